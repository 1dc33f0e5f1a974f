from django.urls import path

from audiences.web import views

app_name = "audiences"

urlpatterns = [
    path("", views.browse, name="browse"),
    path("merge-policies/", views.merge_policies, name="merge_policies"),
]

# Batch segmentation: one job's per-definition history, export downloads.
from audiences.web import batch  # noqa: E402

urlpatterns += [
    path("segment-jobs/<uuid:job_id>/", batch.job_detail, name="segment_job"),
    path("exports/<int:export_id>/download/", batch.export_download, name="export_download"),
]
