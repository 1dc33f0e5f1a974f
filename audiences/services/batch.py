"""Batch segmentation: segment jobs that evaluate definitions at one snapshot instant.

A job is a set of `SegmentJobRun` rows (one per definition), created with the job. Running it:

1. `segment_job_run` claims the job (NEW/QUEUED -> PROCESSING, compare-and-set) and dispatches
   every run whose `inSegment` dependencies inside the job have finished
   (`segment_job_advance`); independent definitions therefore run in parallel on the `batch`
   queue, dependent ones after what they read.
2. `segment_job_run_definition` claims one run (queued -> running, CAS), evaluates the
   definition with the SQL compiler (services/batch_sql.py; a Python residual when a construct
   cannot be pushed down) and writes the memberships set-wise in ONE transaction that first
   re-checks, under a row lock, that the job is still PROCESSING. A killed worker therefore
   leaves nothing half-written, and a cancelled or superseded job writes nothing more.
3. When every run is terminal the job finishes (CAS PROCESSING -> SUCCEEDED/FAILED), the
   counters are final, and the `settings.SIFT_JOB_FINISHED_HOOKS` callables are told on commit.

Every step beats `heartbeat_at`; `segment_job_reap` resumes a job whose worker died (its runs
go back to queued) once, and fails it with the reason the next time. A newer job for the same
definitions supersedes an older NEW/PROCESSING one instead of queueing behind it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils.module_loading import import_string

from audiences.models import SegmentDefinition, SegmentJob, SegmentJobRun
from audiences.services import batch_sql
from audiences.services.memberships import membership_apply_set
from portal.errors import ErrorCode, SiftError

log = logging.getLogger(__name__)

Run = SegmentJobRun.Status
Job = SegmentJob.Status
ACTIVE = (Job.NEW, Job.QUEUED, Job.PROCESSING)
RUN_TERMINAL = (Run.SUCCEEDED, Run.FAILED, Run.CANCELLED, Run.SUPERSEDED)
ALL = "*"


@dataclass(frozen=True)
class ReapResult:
    resumed: int
    failed: int


def _ms(moment: datetime | None) -> int | None:
    return int(moment.timestamp() * 1000) if moment else None


def batch_definitions() -> list[SegmentDefinition]:
    """Every definition a `*` job evaluates: published, batch-enabled, with an expression."""
    return list(SegmentDefinition.objects.filter(
        lifecycle_state=SegmentDefinition.Lifecycle.PUBLISHED, evaluation_batch=True,
        origin=SegmentDefinition.Origin.SEGMENTATION).exclude(expression="").order_by("pk"))


def _resolve(segment_ids: list[str] | str) -> tuple[list[str], list[SegmentDefinition]]:
    if segment_ids == ALL or list(segment_ids) == [ALL]:
        return [ALL], batch_definitions()
    requested = [str(s) for s in segment_ids]
    if not requested:
        raise SiftError(ErrorCode.INVALID, "A segment job needs at least one segmentId (or '*').",
                        {"field": "segmentId"})
    found = {str(d.pk): d for d in SegmentDefinition.objects.filter(pk__in=[
        s for s in requested if _is_uuid(s)])}
    unknown = [s for s in requested if s not in found]
    if unknown:
        raise SiftError(ErrorCode.NOT_FOUND,
                        f"Unknown segment definition id(s): {', '.join(unknown)}.",
                        {"field": "segmentId", "ids": unknown})
    not_batch = [s for s, d in found.items() if not d.expression]
    if not_batch:
        raise SiftError(ErrorCode.INVALID,
                        f"Segment(s) {', '.join(not_batch)} have no expression to evaluate.",
                        {"field": "segmentId", "ids": not_batch})
    return requested, [found[s] for s in dict.fromkeys(requested)]


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def segment_job_create(*, segment_ids: list[str] | str, source: str, now: datetime,
                       snapshot_at: datetime | None = None, snapshot_name: str = "",
                       user: User | None = None, enqueue: bool = True,
                       schedule=None) -> SegmentJob:
    """Create a job over `segment_ids` (or "*"), superseding older active jobs it covers."""
    requested, definitions = _resolve(segment_ids)
    with transaction.atomic():
        job = SegmentJob.objects.create(
            source=source, requested_segments=requested, snapshot_at=snapshot_at or now,
            snapshot_name=snapshot_name or "", schedule=schedule, created_by=user,
            created_at=now, updated_at=now, progress_total=len(definitions),
            metrics={"segments": [str(d.pk) for d in definitions]})
        SegmentJobRun.objects.bulk_create([
            SegmentJobRun(sandbox_id=job.sandbox_id, job=job, definition=d,
                          definition_name=d.name, definition_version=d.version)
            for d in definitions])
        _supersede_older(job=job, definition_ids={d.pk for d in definitions}, now=now)
        if enqueue:
            job_id = str(job.pk)
            transaction.on_commit(lambda: _enqueue_run(job_id))
    return job


def _enqueue_run(job_id: str) -> None:
    from audiences.tasks import segment_job_run as task

    task.delay(job_id)


def _supersede_older(*, job: SegmentJob, definition_ids: set, now: datetime) -> None:
    """Older active jobs whose definitions this job also evaluates stop (PostHog-style
    supersede-by-version): their queued runs never start, running ones fail their CAS."""
    for older in SegmentJob.objects.select_for_update().filter(status__in=ACTIVE).exclude(
            pk=job.pk):
        theirs = set(older.runs.values_list("definition_id", flat=True))
        if theirs and theirs <= definition_ids:
            older.runs.exclude(status__in=RUN_TERMINAL).update(status=Run.SUPERSEDED,
                                                               finished_at=now)
            SegmentJob.objects.filter(pk=older.pk, status__in=ACTIVE).update(
                status=Job.CANCELLED, superseded_by=job, finished_at=now, updated_at=now,
                errors=older.errors + [{"code": "superseded",
                                        "msg": f"Superseded by segment job {job.pk}."}])


def segment_job_get(*, job_id) -> SegmentJob:
    job = SegmentJob.objects.filter(pk=job_id).first() if _is_uuid(str(job_id)) else None
    if job is None:
        raise SiftError(ErrorCode.NOT_FOUND, f"Segment job {job_id} was not found.")
    return job


def _beat(job_id, now: datetime) -> None:
    SegmentJob.objects.filter(pk=job_id).update(heartbeat_at=now, updated_at=now)


def segment_job_run(*, job_id, now: datetime, inline: bool = False,
                    on_progress: Callable[[SegmentJobRun], None] | None = None) -> SegmentJob:
    """Claim the job and run its definitions in dependency order.

    `inline=True` evaluates everything in the calling thread (command line, tests, the embedded
    default), calling `on_progress(run)` after each definition; otherwise one Celery task per
    definition on the `batch` queue.
    """
    claimed = SegmentJob.objects.filter(pk=job_id, status__in=(Job.NEW, Job.QUEUED)).update(
        status=Job.PROCESSING, started_at=now, heartbeat_at=now, updated_at=now)
    job = segment_job_get(job_id=job_id)
    if not claimed and job.status != Job.PROCESSING:
        return job  # already finished, cancelled or superseded
    if not inline:
        segment_job_advance(job_id=job_id, now=now)
        return segment_job_get(job_id=job_id)
    started = time.monotonic()
    while True:
        ready = _ready_definitions(job_id)
        if not ready:
            break
        for definition_id in ready:
            run = segment_job_run_definition(job_id=job_id, definition_id=definition_id, now=now)
            if on_progress is not None and run is not None:
                on_progress(run)
        if not SegmentJob.objects.filter(pk=job_id, status=Job.PROCESSING).exists():
            break
    _finish_if_done(job_id=job_id, now=now + timedelta(seconds=time.monotonic() - started))
    return segment_job_get(job_id=job_id)


def _dependencies_in_job(job_id) -> dict:
    """definition id -> ids of the job's other definitions it reads through inSegment."""
    ids = set(SegmentJobRun.objects.filter(job_id=job_id).values_list("definition_id", flat=True))
    out: dict = {pk: set() for pk in ids}
    through = SegmentDefinition.dependencies.through
    for source_id, target_id in through.objects.filter(
            from_segmentdefinition_id__in=ids, to_segmentdefinition_id__in=ids).values_list(
            "from_segmentdefinition_id", "to_segmentdefinition_id"):
        out[source_id].add(target_id)
    return out


def _ready_definitions(job_id) -> list:
    """Queued runs whose in-job dependencies are all terminal."""
    deps = _dependencies_in_job(job_id)
    status = dict(SegmentJobRun.objects.filter(job_id=job_id).values_list("definition_id",
                                                                           "status"))
    return sorted((pk for pk, st in status.items() if st == Run.QUEUED
                   and all(status.get(d) in RUN_TERMINAL for d in deps.get(pk, ()))), key=str)


def segment_job_advance(*, job_id, now: datetime) -> int:
    """Dispatch every ready definition as its own task; finish the job when all are done."""
    from audiences.tasks import segment_job_run_definition as task

    ready = _ready_definitions(job_id)
    for definition_id in ready:
        job, definition = str(job_id), str(definition_id)
        transaction.on_commit(lambda j=job, d=definition: task.delay(j, d))
    if not ready:
        _finish_if_done(job_id=job_id, now=now)
    return len(ready)


def segment_job_run_definition(*, job_id, definition_id, now: datetime) -> SegmentJobRun | None:
    """Evaluate one definition of a job and write its memberships (one transaction)."""
    claimed = SegmentJobRun.objects.filter(job_id=job_id, definition_id=definition_id,
                                           status=Run.QUEUED).update(status=Run.RUNNING,
                                                                     started_at=now)
    run = SegmentJobRun.objects.select_related("job", "definition").filter(
        job_id=job_id, definition_id=definition_id).first()
    if not claimed or run is None:
        return run  # another worker has it, or it is finished
    job = run.job
    if job.status != Job.PROCESSING:
        _close_run(run, Run.CANCELLED, now, code="cancelled", message="The job was cancelled.")
        return run
    _beat(job_id, now)
    failed_dep = _failed_dependency(job_id, definition_id)
    started = time.monotonic()
    try:
        if failed_dep:
            raise SiftError(ErrorCode.CONFLICT,
                            f"Dependency {failed_dep} failed in this job; not evaluated.",
                            {"code": "dependency_failed"})
        result = batch_sql.definition_evaluate(definition=run.definition, now=job.snapshot_at,
                                               heartbeat=lambda: _beat(job_id, now))
        with transaction.atomic():
            if not SegmentJob.objects.select_for_update().filter(
                    pk=job_id, status=Job.PROCESSING).exists():
                _close_run(run, Run.CANCELLED, now, code="cancelled",
                           message="The job was cancelled or superseded before the write.")
                return run
            applied = membership_apply_set(definition=run.definition,
                                           qualifying=result.profile_ids, at=job.snapshot_at,
                                           job_id=job.pk)
            elapsed = int((time.monotonic() - started) * 1000)
            _record_success(run, result, applied, elapsed, now)
    except Exception as exc:  # recorded on the run: "did it work?" must have an answer
        log.exception("segment job %s: definition %s failed", job_id, definition_id)
        code = getattr(exc, "details", {}).get("code") if isinstance(exc, SiftError) else None
        _record_failure(run, code or _error_code(exc), str(exc)[:2000],
                        int((time.monotonic() - started) * 1000), now)
    finally:
        _beat(job_id, now)
    return run


def segment_job_step(*, job_id, definition_id, now: datetime) -> None:
    """One definition's task: evaluate it, then dispatch what it unblocked (or finish)."""
    segment_job_run_definition(job_id=job_id, definition_id=definition_id, now=now)
    segment_job_advance(job_id=job_id, now=now)


def _error_code(exc: Exception) -> str:
    if isinstance(exc, SiftError):
        return str(exc.code)
    return "evaluation_failed"


def _failed_dependency(job_id, definition_id) -> str | None:
    deps = _dependencies_in_job(job_id).get(definition_id, set())
    bad = SegmentJobRun.objects.filter(job_id=job_id, definition_id__in=deps).exclude(
        status=Run.SUCCEEDED).values_list("definition_id", flat=True).first()
    return str(bad) if bad else None


def _record_success(run: SegmentJobRun, result, applied, elapsed: int, now: datetime) -> None:
    run.status = Run.SUCCEEDED
    run.evaluator = result.evaluator
    run.finished_at = now
    run.duration_ms = elapsed
    run.profiles_scanned = result.scanned
    run.qualified = applied.qualified
    run.realized = applied.realized
    run.existing = applied.existing
    run.exited = applied.exited
    run.error_code = ""
    run.error_message = ""
    run.save()
    SegmentJob.objects.filter(pk=run.job_id).update(
        progress_done=_done_count(run.job_id), updated_at=now)
    fallbacks = {run.definition_id: list(result.fallbacks)} if result.fallbacks else {}
    if fallbacks:
        _merge_job_metrics(run.job_id, {"pythonFallbacks": {str(k): v
                                                            for k, v in fallbacks.items()}})
    SegmentDefinition.objects.filter(pk=run.definition_id).update(
        last_evaluated_at=run.job.snapshot_at, last_evaluation_status=Run.SUCCEEDED,
        last_evaluation_ms=elapsed, last_evaluation_error="")


def _record_failure(run: SegmentJobRun, code: str, message: str, elapsed: int,
                    now: datetime) -> None:
    SegmentJobRun.objects.filter(pk=run.pk).update(
        status=Run.FAILED, finished_at=now, duration_ms=elapsed, error_code=code,
        error_message=message)
    SegmentJob.objects.filter(pk=run.job_id).update(progress_done=_done_count(run.job_id),
                                                    updated_at=now)
    if run.definition_id:
        SegmentDefinition.objects.filter(pk=run.definition_id).update(
            last_evaluated_at=run.job.snapshot_at, last_evaluation_status=Run.FAILED,
            last_evaluation_ms=elapsed, last_evaluation_error=f"{code}: {message}"[:2000])


def _close_run(run: SegmentJobRun, status: str, now: datetime, *, code: str, message: str
               ) -> None:
    SegmentJobRun.objects.filter(pk=run.pk).update(status=status, finished_at=now,
                                                   error_code=code, error_message=message)


def _done_count(job_id) -> int:
    return SegmentJobRun.objects.filter(job_id=job_id, status__in=RUN_TERMINAL).count()


def _merge_job_metrics(job_id, extra: dict) -> None:
    with transaction.atomic():
        job = SegmentJob.objects.select_for_update().get(pk=job_id)
        metrics = dict(job.metrics)
        for key, value in extra.items():
            if isinstance(value, dict):
                metrics[key] = {**metrics.get(key, {}), **value}
            else:
                metrics[key] = value
        job.metrics = metrics
        job.save(update_fields=["metrics"])


def _finish_if_done(*, job_id, now: datetime) -> bool:
    """Finish the job once every run is terminal (exactly once: CAS on PROCESSING)."""
    if SegmentJobRun.objects.filter(job_id=job_id).exclude(status__in=RUN_TERMINAL).exists():
        return False
    with transaction.atomic():
        job = SegmentJob.objects.select_for_update().filter(pk=job_id,
                                                             status=Job.PROCESSING).first()
        if job is None:
            return False
        runs = list(job.runs.all())
        failed = [r for r in runs if r.status == Run.FAILED]
        job.status = Job.FAILED if failed else Job.SUCCEEDED
        job.finished_at = now
        job.updated_at = now
        job.progress_done = len(runs)
        job.errors = job.errors + [{"code": r.error_code, "msg": r.error_message,
                                    "segmentId": str(r.definition_id)} for r in failed]
        job.metrics = {**job.metrics, **job_metrics(job=job, runs=runs)}
        job.save()
        job_pk = job.pk
        transaction.on_commit(lambda: _call_finished_hooks(job_pk))
    return True


def job_metrics(*, job: SegmentJob, runs: Iterable[SegmentJobRun]) -> dict:
    """The AEP `metrics` object of a job, from its run rows."""
    runs = list(runs)
    total_ms = sum(r.duration_ms or 0 for r in runs)
    started, finished = _ms(job.started_at), _ms(job.finished_at)
    by_policy: dict = {}
    for run in runs:
        if run.definition_id and run.status == Run.SUCCEEDED:
            policy = str(run.definition.merge_policy_id) if run.definition else ""
            by_policy[policy] = max(by_policy.get(policy, 0), run.profiles_scanned)
    return {
        "totalTime": {"startTimeInMs": started, "endTimeInMs": finished,
                      "totalTimeInMs": (finished - started) if started and finished else None},
        "profileSegmentationTime": {"startTimeInMs": started, "endTimeInMs": finished,
                                    "totalTimeInMs": total_ms},
        "totalProfiles": max(by_policy.values(), default=0),
        "totalProfilesByMergePolicy": by_policy,
        "segmentedProfileCounter": {str(r.definition_id): r.qualified for r in runs
                                    if r.status == Run.SUCCEEDED},
        "segmentedProfileByStatusCounter": {
            str(r.definition_id): {"realized": r.realized, "existing": r.existing,
                                   "exited": r.exited}
            for r in runs if r.status == Run.SUCCEEDED},
        "evaluators": {str(r.definition_id): r.evaluator for r in runs if r.evaluator},
    }


def _call_finished_hooks(job_id) -> None:
    for path in getattr(settings, "SIFT_JOB_FINISHED_HOOKS", []):
        try:
            import_string(path)(job_id=job_id)
        except Exception:  # one failing hook must not hide the job from the others
            log.exception("job-finished hook %s failed for job %s", path, job_id)


def segment_job_cancel(*, job_id, now: datetime) -> SegmentJob:
    """Cancel a job: runs not started never start; a running one discards its result."""
    job = segment_job_get(job_id=job_id)
    with transaction.atomic():
        changed = SegmentJob.objects.filter(pk=job.pk, status__in=ACTIVE).update(
            status=Job.CANCELLED, finished_at=now, updated_at=now)
        if not changed:
            raise SiftError(ErrorCode.JOB_NOT_CANCELLABLE,
                            f"Segment job {job.pk} is {job.status} and cannot be cancelled.",
                            status=409)
        job.runs.filter(status=Run.QUEUED).update(status=Run.CANCELLED, finished_at=now,
                                                  error_code="cancelled",
                                                  error_message="The job was cancelled.")
    return segment_job_get(job_id=job_id)


def segment_job_reap(*, now: datetime) -> ReapResult:
    """Resume (once) or fail PROCESSING jobs whose heartbeat is older than the timeout.

    Runs all sandboxes (a beat task): claims each stale job with a compare-and-set on its
    heartbeat so two reapers never act on the same job.
    """
    timeout = timedelta(seconds=getattr(settings, "SIFT_JOB_HEARTBEAT_TIMEOUT", 600))
    max_resumes = getattr(settings, "SIFT_JOB_MAX_RESUMES", 1)
    resumed = failed = 0
    for job in SegmentJob.objects.unscoped().filter(status=Job.PROCESSING,
                                                    heartbeat_at__lt=now - timeout):
        claimed = SegmentJob.objects.unscoped().filter(
            pk=job.pk, status=Job.PROCESSING, heartbeat_at=job.heartbeat_at).update(
            heartbeat_at=now, updated_at=now)
        if not claimed:
            continue
        runs = SegmentJobRun.objects.unscoped().filter(job_id=job.pk)
        if job.metrics.get("resumes", 0) < max_resumes:
            runs.filter(status=Run.RUNNING).update(status=Run.QUEUED, started_at=None)
            job.metrics = {**job.metrics, "resumes": job.metrics.get("resumes", 0) + 1}
            SegmentJob.objects.unscoped().filter(pk=job.pk).update(metrics=job.metrics)
            job_id = str(job.pk)
            transaction.on_commit(lambda j=job_id: _enqueue_advance(j))
            resumed += 1
            continue
        message = (f"No heartbeat since {job.heartbeat_at.isoformat()}: the worker died "
                   f"(resumed {job.metrics.get('resumes', 0)} time(s) already).")
        runs.exclude(status__in=RUN_TERMINAL).update(status=Run.FAILED, finished_at=now,
                                                     error_code="worker_lost",
                                                     error_message=message)
        SegmentJob.objects.unscoped().filter(pk=job.pk, status=Job.PROCESSING).update(
            status=Job.FAILED, finished_at=now, updated_at=now,
            errors=job.errors + [{"code": "worker_lost", "msg": message}])
        job_pk = job.pk
        transaction.on_commit(lambda j=job_pk: _call_finished_hooks(j))
        failed += 1
    return ReapResult(resumed=resumed, failed=failed)


def _enqueue_advance(job_id: str) -> None:
    from audiences.tasks import segment_job_advance as task

    task.delay(job_id)
