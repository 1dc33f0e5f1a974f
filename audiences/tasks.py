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
                       event_types: list[str], now: str | None = None,
                       event_ids: list[str] | None = None) -> int:
    """Re-evaluate touched profiles against the streaming definitions a change can affect
    (at `now`, or at the current time when none is given)."""
    from datetime import datetime

    from django.utils import timezone

    from audiences.services.streaming import streaming_evaluate as evaluate
    from portal.models import Sandbox

    result = evaluate(sandbox=Sandbox.objects.get(pk=sandbox_id), profile_ids=profile_ids,
                      attribute_paths=attribute_paths, event_types=event_types,
                      now=datetime.fromisoformat(now) if now else timezone.now(),
                      event_ids=event_ids or ())
    return result.transitions


@shared_task(name="audiences.tasks.streaming_dependents_evaluate", acks_late=True)
def streaming_dependents_evaluate(*, sandbox_id: int, segment_id: str, profile_ids: list[int],
                                  now: str, skip: list[str] = ()) -> int:
    """Re-evaluate streaming definitions built on an audience whose members just changed."""
    from datetime import datetime

    from audiences.services.streaming import streaming_dependents_evaluate as evaluate
    from portal.models import Sandbox

    result = evaluate(sandbox=Sandbox.objects.get(pk=sandbox_id), segment_id=segment_id,
                      profile_ids=profile_ids, now=datetime.fromisoformat(now), skip=skip)
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
def _merge_policy_rebuild_failed(self, exc, task_id, args, kwargs, einfo) -> None:
    from audiences.models import MergePolicy
    from audiences.services.merge_policies import merge_policy_rebuild_failed
    from portal.scope import sandbox_scope

    policy = MergePolicy.objects.unscoped().select_related("sandbox").filter(pk=args[0]).first()
    if policy is not None:
        with sandbox_scope(policy.sandbox):
            merge_policy_rebuild_failed(merge_policy_id=args[0], version=args[1], error=str(exc))


@shared_task(name="audiences.tasks.merge_policy_rebuild", acks_late=True,
             autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=5,
             on_failure=_merge_policy_rebuild_failed)
def merge_policy_rebuild(merge_policy_id: str, version: int) -> str:
    """Recompute a merge policy's profiles after it was created or its merge rules changed."""
    from django.utils import timezone

    from audiences.models import MergePolicy
    from audiences.services.merge_policies import merge_policy_rebuild as rebuild
    from portal.scope import sandbox_scope

    policy = (MergePolicy.objects.unscoped().select_related("sandbox")
              .filter(pk=merge_policy_id).first())
    if policy is None:
        return "GONE"
    with sandbox_scope(policy.sandbox):
        return rebuild(merge_policy_id=merge_policy_id, version=version, now=timezone.now())


@shared_task(name="audiences.tasks.delivery_flush", acks_late=True)
def delivery_flush(*, destination_id: str) -> int:
    """Send a webhook destination's due deliveries (queue `deliveries`); re-queues itself while
    more are due, so one task never runs unbounded."""
    from audiences.services.destinations import delivery_flush_by_id

    return delivery_flush_by_id(destination_id=destination_id)


@shared_task(name="audiences.tasks.delivery_retry_sweep")
def delivery_retry_sweep() -> int:
    """Queue a flush for every destination whose retries are due (beat)."""
    from django.utils import timezone

    from audiences.services.destinations import deliveries_retry_sweep

    return deliveries_retry_sweep(now=timezone.now())


@shared_task(name="audiences.tasks.export_destination_run", acks_late=True)
def export_destination_run(*, destination_id: str, trigger: str) -> str:
    """Write one file export of a file destination (queue `batch`)."""
    from audiences.services.destinations import file_export_run_by_id

    return file_export_run_by_id(destination_id=destination_id, trigger=trigger)


@shared_task(name="audiences.tasks.export_destinations_due")
def export_destinations_due() -> int:
    """Queue the hourly and daily file exports that are due (beat)."""
    from django.utils import timezone

    from audiences.services.destinations import file_exports_due

    return file_exports_due(now=timezone.now())


@shared_task(name="audiences.tasks.uploads_expire")
def uploads_expire() -> int:
    """Exit the members of custom-upload audiences whose data expiration has passed (beat)."""
    from django.utils import timezone

    from audiences.services.uploads import uploads_expire_all

    return uploads_expire_all(now=timezone.now())


@shared_task(name="audiences.tasks.merge_policy_rebuild_sweep")
def merge_policy_rebuild_sweep() -> int:
    """Re-enqueue merge-policy rebuilds whose worker stopped sending heartbeats (beat)."""
    from django.utils import timezone

    from audiences.services.merge_policies import merge_policy_rebuild_sweep as sweep

    return sweep(now=timezone.now())
