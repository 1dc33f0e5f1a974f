from django.urls import path

from audiences.web import views

app_name = "audiences"

urlpatterns = [
    path("", views.browse, name="browse"),
    path("merge-policies/", views.merge_policies, name="merge_policies"),
]

# Batch segmentation: segment jobs and export downloads.
from audiences.web import jobs  # noqa: E402

urlpatterns += [
    path("jobs/", jobs.job_list, name="jobs"),
    path("jobs/run/", jobs.job_start, name="job_start"),
    path("jobs/<uuid:job_id>/", jobs.job_detail, name="job"),
    path("exports/<int:export_id>/download/", jobs.export_download, name="export_download"),
]
