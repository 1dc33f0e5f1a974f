from django.urls import path

from audiences.web import views

app_name = "audiences"

urlpatterns = [
    path("", views.browse, name="browse"),
    path("merge-policies/", views.merge_policies, name="merge_policies"),
]

# Destinations: where audiences are activated, delivery history and replay.
from audiences.web import destinations  # noqa: E402

urlpatterns += [
    path("destinations/", destinations.destinations, name="destinations"),
    path("destinations/<uuid:destination_id>/", destinations.destination, name="destination"),
    path("destinations/<uuid:destination_id>/edit", destinations.destination_edit,
         name="destination_edit"),
    path("destinations/<uuid:destination_id>/delete", destinations.destination_delete,
         name="destination_delete"),
    path("destinations/<uuid:destination_id>/test", destinations.destination_test,
         name="destination_test"),
    path("destinations/<uuid:destination_id>/activations", destinations.activation_add,
         name="destination_activation_add"),
    path("destinations/<uuid:destination_id>/activations/<int:activation_id>/remove",
         destinations.activation_remove, name="destination_activation_remove"),
    path("destinations/<uuid:destination_id>/replay", destinations.delivery_replay,
         name="destination_replay"),
    path("destinations/<uuid:destination_id>/export", destinations.destination_export,
         name="destination_export"),
]
