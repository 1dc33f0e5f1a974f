"""Segment jobs page: every batch job with its status, progress, per-audience counts and
errors, refreshed by htmx while a job is running; "Run now" asks the batch service for a job."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Prefetch
from django.shortcuts import redirect
from django.views.decorators.http import require_POST, require_safe

from audiences.models import SegmentDefinition, SegmentJob, SegmentJobRun
from audiences.web.audiences import segment_job_start
from portal.errors import SiftError
from portal.web import portal_view, render_page_or_partial

PAGE_SIZE = 20
ACTIVE = (SegmentJob.Status.NEW, SegmentJob.Status.QUEUED, SegmentJob.Status.PROCESSING,
          SegmentJob.Status.CANCELLING)


@require_safe
@portal_view()
def jobs(request):
    page = max(int(request.GET["page"]), 1) if request.GET.get("page", "").isdigit() else 1
    rows = list(SegmentJob.objects.select_related("created_by").prefetch_related(
        Prefetch("runs", queryset=SegmentJobRun.objects.order_by("definition_name")))
        .order_by("-created_at")[(page - 1) * PAGE_SIZE: page * PAGE_SIZE + 1])
    has_next = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    for job in rows:
        job.percent = round(100 * job.progress_done / job.progress_total) \
            if job.progress_total else (100 if job.status in SegmentJob.FINISHED else 0)
        job.active = job.status in ACTIVE
        job.seconds = round((job.finished_at - job.started_at).total_seconds(), 1) \
            if job.started_at and job.finished_at else None
    context = {"nav": "segment-jobs", "jobs": rows, "page": page, "has_next": has_next,
               "any_active": any(j.active for j in rows)}
    return render_page_or_partial(request, "audiences/portal/jobs.html",
                                  "audiences/portal/_jobs.html", context)


@require_POST
@portal_view(role="write")
def jobs_run_now(request):
    """Evaluate every batch audience now (Adobe's "Evaluate all" outside the schedule)."""
    definitions = list(SegmentDefinition.objects.filter(
        evaluation_batch=True, lifecycle_state=SegmentDefinition.Lifecycle.PUBLISHED))
    try:
        if not definitions:
            messages.info(request, "There are no published batch audiences to evaluate.")
        else:
            messages.success(request, segment_job_start(definitions=definitions,
                                                         user=request.user))
    except SiftError as exc:
        messages.error(request, exc.message)
    return redirect("audiences:jobs")
