from django.urls import path

from audiences.web import audiences, builder, details, jobs

app_name = "audiences"

urlpatterns = [
    path("", audiences.browse, name="browse"),
    # Audience Portal (browse, details, builder, jobs)
    path("audiences/bulk/", audiences.bulk_action, name="bulk"),
    path("audiences/schedule/", audiences.schedule_toggle, name="schedule_toggle"),
    path("audiences/import/", audiences.import_audience, name="import"),
    path("audiences/import/preview/", audiences.import_preview, name="import_preview"),
    path("audiences/new/", builder.builder_create, name="create"),
    path("audiences/builder/sync/", builder.builder_sync, name="builder_sync"),
    path("audiences/builder/estimate/", builder.builder_estimate, name="builder_estimate"),
    path("audiences/builder/estimate/<uuid:preview_id>/", builder.builder_estimate_poll,
         name="builder_estimate_poll"),
    path("audiences/<uuid:definition_id>/", details.detail, name="detail"),
    path("audiences/<uuid:definition_id>/edit/", builder.builder_edit, name="edit"),
    path("audiences/<uuid:definition_id>/export/", audiences.audience_export, name="export"),
    path("audiences/<uuid:definition_id>/action/<slug:action>/", audiences.audience_action,
         name="action"),
    path("segment-jobs/", jobs.jobs, name="jobs"),
    path("segment-jobs/run/", jobs.jobs_run_now, name="jobs_run_now"),
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

# Batch segmentation: one job's per-definition history, export downloads.
from audiences.web import batch  # noqa: E402

urlpatterns += [
    path("segment-jobs/<uuid:job_id>/", batch.job_detail, name="segment_job"),
    path("exports/<int:export_id>/download/", batch.export_download, name="export_download"),
]
