"""Celery tasks: ids in, one service call, nothing else (see STYLE.md §8)."""

from celery import shared_task


@shared_task(name="audiences.tasks.metrics_rollup")
def metrics_rollup() -> int:
    """Fold new membership changes into the per-audience time buckets."""
    from audiences.services.metrics import metrics_rollup as rollup

    return rollup().changes


@shared_task(name="audiences.tasks.streaming_evaluate", acks_late=True,
             autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=5)
def streaming_evaluate(*, sandbox_id: int, profile_ids: list[int], attribute_paths: list[str],
                       event_types: list[str], now: str) -> int:
    """Re-evaluate touched profiles against the streaming definitions a change can affect."""
    from datetime import datetime

    from audiences.services.streaming import streaming_evaluate as evaluate
    from portal.models import Sandbox

    result = evaluate(sandbox=Sandbox.objects.get(pk=sandbox_id), profile_ids=profile_ids,
                      attribute_paths=attribute_paths, event_types=event_types,
                      now=datetime.fromisoformat(now))
    return result.transitions


@shared_task(name="audiences.tasks.streaming_lapse_sweep")
def streaming_lapse_sweep() -> int:
    """Exit streaming members whose time window lapsed (beat, every 15 s)."""
    from django.utils import timezone

    from audiences.services.streaming import streaming_lapse_sweep as sweep

    return sweep(now=timezone.now()).transitions


@shared_task(name="audiences.tasks.preview_run")
def preview_run(preview_id: str) -> str:
    """Evaluate one preview and its estimate over the current profile data."""
    from django.utils import timezone

    from audiences.models import Preview
    from audiences.services.previews import preview_run as run
    from portal.scope import sandbox_scope

    preview = Preview.objects.unscoped().select_related("sandbox").filter(pk=preview_id).first()
    if preview is None:
        return "GONE"
    with sandbox_scope(preview.sandbox):
        return run(preview_id=preview_id, now=timezone.now())


def _job_scope(job_id: str):
    from audiences.models import SegmentJob
    from portal.scope import sandbox_scope

    job = SegmentJob.objects.unscoped().select_related("sandbox").filter(pk=job_id).first()
    return (sandbox_scope(job.sandbox) if job is not None else None)


@shared_task(name="audiences.tasks.segment_job_run", acks_late=True,
             autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=5)
def segment_job_run(job_id: str) -> str:
    """Claim a segment job and dispatch its first definitions."""
    from django.utils import timezone

    from audiences.services.batch import segment_job_run as run

    scope = _job_scope(job_id)
    if scope is None:
        return "GONE"
    with scope:
        return run(job_id=job_id, now=timezone.now()).status


@shared_task(name="audiences.tasks.segment_job_run_definition", acks_late=True,
             autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=5)
def segment_job_run_definition(job_id: str, definition_id: str) -> None:
    """Evaluate one definition of a job, then dispatch what it unblocked."""
    from django.utils import timezone

    from audiences.services.batch import segment_job_step

    scope = _job_scope(job_id)
    if scope is not None:
        with scope:
            segment_job_step(job_id=job_id, definition_id=definition_id, now=timezone.now())


@shared_task(name="audiences.tasks.segment_job_advance")
def segment_job_advance(job_id: str) -> int:
    """Dispatch a resumed job's ready definitions (after the reaper re-queued them)."""
    from django.utils import timezone

    from audiences.services.batch import segment_job_advance as advance

    scope = _job_scope(job_id)
    if scope is None:
        return 0
    with scope:
        return advance(job_id=job_id, now=timezone.now())


@shared_task(name="audiences.tasks.segment_job_reap")
def segment_job_reap() -> int:
    """Resume or fail segment jobs whose worker stopped beating (beat, every minute)."""
    from django.utils import timezone

    from audiences.services.batch import segment_job_reap as reap

    result = reap(now=timezone.now())
    return result.resumed + result.failed


@shared_task(name="audiences.tasks.schedules_dispatch")
def schedules_dispatch() -> int:
    """Start the segment jobs and exports whose schedule is due (beat, every minute)."""
    from django.utils import timezone

    from audiences.services.schedules import schedules_dispatch as dispatch

    return dispatch(now=timezone.now())


@shared_task(name="audiences.tasks.export_run", acks_late=True)
def export_run(export_id: int) -> str:
    """Write one export file."""
    from django.utils import timezone

    from audiences.models import ExportJob
    from audiences.services.exports import export_run as run
    from portal.scope import sandbox_scope

    export = ExportJob.objects.unscoped().select_related("sandbox").filter(pk=export_id).first()
    if export is None:
        return "GONE"
    with sandbox_scope(export.sandbox):
        return run(export_id=export_id, now=timezone.now()).status
