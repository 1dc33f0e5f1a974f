from django.urls import path

from audiences.web import audiences, builder, details, jobs, views

app_name = "audiences"

urlpatterns = [
    path("", audiences.browse, name="browse"),
    path("merge-policies/", views.merge_policies, name="merge_policies"),
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
