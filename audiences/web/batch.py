"""Portal pages for batch segmentation: one segment job with its per-definition history
(when was each audience evaluated, how, and did it work), and export-job downloads. The jobs
list and "Run now" belong to the segment jobs page."""

from __future__ import annotations

from django.http import FileResponse, Http404
from django.views.decorators.http import require_safe

from audiences.models import ExportJob
from audiences.services import batch, exports
from portal.errors import SiftError
from portal.web import portal_view, render_page_or_partial

STATUS_BADGE = {"SUCCEEDED": "badge-positive", "FAILED": "badge-negative",
                "CANCELLED": "badge-notice", "PROCESSING": "badge-info", "NEW": "badge-batch"}


@require_safe
@portal_view()
def job_detail(request, job_id):
    try:
        job = batch.segment_job_get(job_id=job_id)
    except SiftError:
        raise Http404("No such segment job") from None
    job.badge = STATUS_BADGE.get(job.status, "badge-batch")
    return render_page_or_partial(request, "audiences/batch/job.html",
                                  "audiences/batch/job.html",
                                  {"job": job, "runs": job.runs.order_by("id"),
                                   "nav": "segment-jobs"})


@require_safe
@portal_view()
def export_download(request, export_id: int):
    try:
        export = exports.export_get(export_id=export_id)
    except SiftError:
        raise Http404("No such export") from None
    if export.status != ExportJob.Status.SUCCEEDED:
        raise Http404("The export has no file yet")
    path = exports.export_path(export)
    return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name)  # noqa: SIM115
