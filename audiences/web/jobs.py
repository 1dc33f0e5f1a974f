"""Portal pages for batch segmentation: segment jobs with their per-definition history, and
export downloads. Thin: services do the work."""

from __future__ import annotations

from django.http import FileResponse, Http404
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from audiences.models import ExportJob, SegmentJob
from audiences.services import batch, exports
from portal.errors import SiftError
from portal.web import portal_view, render_page_or_partial

STATUS_BADGE = {"SUCCEEDED": "badge-positive", "FAILED": "badge-negative",
                "CANCELLED": "badge-notice", "PROCESSING": "badge-info", "NEW": "badge-batch"}


@require_safe
@portal_view()
def job_list(request):
    jobs = list(SegmentJob.objects.order_by("-created_at")[:50])
    for job in jobs:
        job.badge = STATUS_BADGE.get(job.status, "badge-batch")
    export_jobs = ExportJob.objects.select_related("definition").order_by("-created_at")[:20]
    return render_page_or_partial(request, "audiences/jobs/list.html",
                                  "audiences/jobs/_jobs.html",
                                  {"jobs": jobs, "exports": export_jobs, "nav": "segment-jobs"})


@require_safe
@portal_view()
def job_detail(request, job_id):
    try:
        job = batch.segment_job_get(job_id=job_id)
    except SiftError:
        raise Http404("No such segment job") from None
    job.badge = STATUS_BADGE.get(job.status, "badge-batch")
    return render_page_or_partial(request, "audiences/jobs/detail.html",
                                  "audiences/jobs/detail.html",
                                  {"job": job, "runs": job.runs.order_by("id"),
                                   "nav": "segment-jobs"})


@require_POST
@portal_view(role="write")
def job_start(request):
    job = batch.segment_job_create(segment_ids="*", source=SegmentJob.Source.PORTAL,
                                   now=timezone.now(), user=request.user)
    return redirect("audiences:job", job_id=job.pk)


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
