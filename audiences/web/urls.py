from django.urls import path

from audiences.web import views

app_name = "audiences"

urlpatterns = [
    path("", views.browse, name="browse"),
]

# Profile store: datasets and inlets, profile look-up, merge policies (admins).
from audiences.web import profiles  # noqa: E402

urlpatterns += [
    path("datasets/", profiles.datasets, name="datasets"),
    path("datasets/create/", profiles.dataset_create, name="dataset_create"),
    path("datasets/connections/create/", profiles.connection_create, name="connection_create"),
    path("profiles/", profiles.profiles, name="profiles"),
    path("merge-policies/", profiles.merge_policies, name="merge_policies"),
    path("merge-policies/new/", profiles.merge_policy_wizard, name="merge_policy_new"),
    path("merge-policies/<uuid:policy_id>/edit/", profiles.merge_policy_wizard,
         name="merge_policy_edit"),
    path("merge-policies/<uuid:policy_id>/default/", profiles.merge_policy_action,
         {"action": "default"}, name="merge_policy_default"),
    path("merge-policies/<uuid:policy_id>/edge/", profiles.merge_policy_action,
         {"action": "edge"}, name="merge_policy_edge"),
    path("merge-policies/<uuid:policy_id>/delete/", profiles.merge_policy_action,
         {"action": "delete"}, name="merge_policy_delete"),
]
