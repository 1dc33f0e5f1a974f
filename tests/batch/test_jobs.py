"""Segment jobs: lifecycle, set-wise memberships, idempotence, order, supersede, cancel, reaper."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from audiences.models import Membership, MembershipChange, SegmentJob, SegmentJobRun
from audiences.services import batch
from portal.errors import SiftError
from tests.factories import default_policy
from tests.services import profile_data

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)
FINISHED: list = []


def record_finished(*, job_id) -> None:
    FINISHED.append(job_id)


def definition(name: str, expression: str):
    from audiences.services.definitions import definition_create

    return definition_create(name=name, expression=expression, user=None, now=NOW)


def people(*countries):
    policy = default_policy()
    return [profile_data.person(policy=policy, attributes={"homeAddress": {"countryISO": c}},
                                at=NOW)[0] for c in countries]


def statuses(d) -> dict:
    return dict(Membership.objects.filter(definition=d).values_list("profile_id", "status"))


def run(ids, at=NOW, **kw):
    job = batch.segment_job_create(segment_ids=ids, source="api", now=at, enqueue=False, **kw)
    return batch.segment_job_run(job_id=job.pk, now=at, inline=True)


def test_a_job_realizes_then_keeps_then_exits_members(in_acme_prod):
    us, ca, _ = people("US", "CA", "US")
    audience = definition("US", 'homeAddress.countryISO = "US"')
    job = run([str(audience.pk)])
    assert job.status == "SUCCEEDED"
    assert statuses(audience) == {us.pk: "realized", _.pk: "realized"}
    assert job.metrics["segmentedProfileCounter"] == {str(audience.pk): 2}
    assert job.metrics["totalProfiles"] == 3
    us.attributes = {"homeAddress": {"countryISO": "FR"}}
    us.save()
    later = NOW + timedelta(days=1)
    job2 = run([str(audience.pk)], at=later)
    assert statuses(audience) == {us.pk: "exited", _.pk: "existing"}
    assert job2.metrics["segmentedProfileByStatusCounter"][str(audience.pk)] == {
        "realized": 0, "existing": 1, "exited": 1}
    exited = Membership.objects.get(definition=audience, profile=us)
    assert exited.last_qualification_time == later
    changes = list(MembershipChange.objects.filter(definition=audience).order_by("id")
                   .values_list("old_status", "new_status", "job_id"))
    assert changes == [("", "realized", job.pk), ("", "realized", job.pk),
                       ("realized", "existing", job2.pk), ("realized", "exited", job2.pk)] or \
        sorted(changes) == sorted([("", "realized", job.pk), ("", "realized", job.pk),
                                   ("realized", "existing", job2.pk),
                                   ("realized", "exited", job2.pk)])
    audience.refresh_from_db()
    assert (audience.qualified_count, audience.existing_count, audience.exited_count) == (1, 1, 1)


def test_rerunning_the_same_snapshot_changes_nothing(in_acme_prod):
    people("US", "CA")
    audience = definition("US", 'homeAddress.countryISO = "US"')
    run([str(audience.pk)])
    before = (statuses(audience), MembershipChange.objects.count(),
              list(Membership.objects.values_list("last_qualification_time", flat=True)))
    job = run([str(audience.pk)])
    after = (statuses(audience), MembershipChange.objects.count(),
             list(Membership.objects.values_list("last_qualification_time", flat=True)))
    assert before == after
    assert job.metrics["segmentedProfileByStatusCounter"][str(audience.pk)]["realized"] == 0


def test_every_definition_gets_a_history_row_and_dependencies_run_first(in_acme_prod):
    people("US", "CA")
    base = definition("US", 'homeAddress.countryISO = "US"')
    derived = definition("Not US", f'not inSegment("{base.pk}")')
    job = run("*")
    assert job.status == "SUCCEEDED"
    runs = {r.definition_id: r for r in SegmentJobRun.objects.filter(job=job)}
    assert set(runs) == {base.pk, derived.pk}
    assert runs[base.pk].started_at <= runs[derived.pk].started_at
    assert runs[derived.pk].qualified == 1  # read the base's fresh memberships
    assert all(r.status == "succeeded" and r.evaluator == "sql" and r.duration_ms is not None
               for r in runs.values())
    base.refresh_from_db()
    assert base.last_evaluation_status == "succeeded" and base.last_evaluated_at == NOW


def test_a_failing_definition_is_recorded_and_fails_the_job(in_acme_prod, monkeypatch):
    people("US")
    good = definition("US", 'homeAddress.countryISO = "US"')
    bad = definition("Broken", 'homeAddress.countryISO = "CA"')
    real = batch.batch_sql.definition_evaluate

    def boom(*, definition, now, heartbeat=None):
        if definition.pk == bad.pk:
            raise RuntimeError("disk on fire")
        return real(definition=definition, now=now, heartbeat=heartbeat)

    monkeypatch.setattr(batch.batch_sql, "definition_evaluate", boom)
    job = run("*")
    assert job.status == "FAILED"
    failed = SegmentJobRun.objects.get(job=job, definition=bad)
    assert (failed.status, failed.error_code, failed.error_message) == (
        "failed", "evaluation_failed", "disk on fire")
    assert job.errors[0]["segmentId"] == str(bad.pk)
    assert statuses(good)  # the other definition was still written
    assert not statuses(bad)


def test_finished_hooks_are_called_once_after_commit(in_acme_prod, settings,
                                                     django_capture_on_commit_callbacks):
    settings.SIFT_JOB_FINISHED_HOOKS = ["tests.batch.test_jobs.record_finished"]
    FINISHED.clear()
    audience = definition("US", 'homeAddress.countryISO = "US"')
    with django_capture_on_commit_callbacks(execute=True):
        job = run([str(audience.pk)])
    assert FINISHED == [job.pk]


def test_a_newer_job_supersedes_an_older_one_for_the_same_definitions(in_acme_prod):
    people("US")
    audience = definition("US", 'homeAddress.countryISO = "US"')
    old = batch.segment_job_create(segment_ids=[str(audience.pk)], source="api", now=NOW,
                                   enqueue=False)
    new = batch.segment_job_create(segment_ids="*", source="api", now=NOW, enqueue=False)
    old.refresh_from_db()
    assert old.status == "CANCELLED" and old.superseded_by_id == new.pk
    assert SegmentJobRun.objects.get(job=old).status == "superseded"
    assert batch.segment_job_run(job_id=old.pk, now=NOW, inline=True).status == "CANCELLED"
    assert not statuses(audience)
    assert batch.segment_job_run(job_id=new.pk, now=NOW, inline=True).status == "SUCCEEDED"


def test_a_job_over_other_definitions_does_not_supersede(in_acme_prod):
    a = definition("A", 'homeAddress.countryISO = "US"')
    b = definition("B", 'homeAddress.countryISO = "CA"')
    old = batch.segment_job_create(segment_ids=[str(a.pk)], source="api", now=NOW, enqueue=False)
    batch.segment_job_create(segment_ids=[str(b.pk)], source="api", now=NOW, enqueue=False)
    old.refresh_from_db()
    assert old.status == "NEW"


def test_cancel_stops_a_job_and_a_finished_job_cannot_be_cancelled(in_acme_prod):
    people("US")
    audience = definition("US", 'homeAddress.countryISO = "US"')
    job = batch.segment_job_create(segment_ids="*", source="api", now=NOW, enqueue=False)
    assert batch.segment_job_cancel(job_id=job.pk, now=NOW).status == "CANCELLED"
    assert batch.segment_job_run(job_id=job.pk, now=NOW, inline=True).status == "CANCELLED"
    assert not statuses(audience)
    assert SegmentJobRun.objects.get(job=job).status == "cancelled"
    with pytest.raises(SiftError) as error:
        batch.segment_job_cancel(job_id=job.pk, now=NOW)
    assert error.value.code == "job_not_cancellable"


def test_a_cancel_while_evaluating_discards_the_result(in_acme_prod, monkeypatch):
    people("US")
    audience = definition("US", 'homeAddress.countryISO = "US"')
    job = batch.segment_job_create(segment_ids="*", source="api", now=NOW, enqueue=False)
    real = batch.batch_sql.definition_evaluate

    def cancel_midway(**kwargs):
        result = real(**kwargs)
        batch.segment_job_cancel(job_id=job.pk, now=NOW)
        return result

    monkeypatch.setattr(batch.batch_sql, "definition_evaluate", cancel_midway)
    assert batch.segment_job_run(job_id=job.pk, now=NOW, inline=True).status == "CANCELLED"
    assert not statuses(audience)
    assert SegmentJobRun.objects.get(job=job).status == "cancelled"


def test_unknown_segment_ids_are_refused_by_name(in_acme_prod):
    with pytest.raises(SiftError) as error:
        batch.segment_job_create(segment_ids=["nope"], source="api", now=NOW)
    assert error.value.code == "not_found" and "nope" in error.value.message


def test_the_reaper_resumes_a_dead_job_once_then_fails_it(in_acme_prod, settings,
                                                          django_capture_on_commit_callbacks):
    settings.SIFT_JOB_HEARTBEAT_TIMEOUT = 60
    people("US")
    audience = definition("US", 'homeAddress.countryISO = "US"')
    job = batch.segment_job_create(segment_ids="*", source="api", now=NOW, enqueue=False)
    # A worker claimed the job and the run, then died without a word.
    SegmentJob.objects.filter(pk=job.pk).update(status="PROCESSING", heartbeat_at=NOW)
    SegmentJobRun.objects.filter(job=job).update(status="running", started_at=NOW)
    assert batch.segment_job_reap(now=NOW + timedelta(seconds=30)) == batch.ReapResult(0, 0)
    with django_capture_on_commit_callbacks(execute=True):
        result = batch.segment_job_reap(now=NOW + timedelta(minutes=5))
    assert result == batch.ReapResult(resumed=1, failed=0)
    job.refresh_from_db()
    assert job.status == "SUCCEEDED"  # eager Celery ran the resumed definition
    assert statuses(audience)
    # The second death is final, with the reason on the job and the run.
    job2 = batch.segment_job_create(segment_ids="*", source="api", now=NOW, enqueue=False)
    SegmentJob.objects.filter(pk=job2.pk).update(status="PROCESSING", heartbeat_at=NOW,
                                                 metrics={"resumes": 1})
    SegmentJobRun.objects.filter(job=job2).update(status="running", started_at=NOW)
    assert batch.segment_job_reap(now=NOW + timedelta(minutes=5)).failed == 1
    job2.refresh_from_db()
    assert job2.status == "FAILED" and job2.errors[-1]["code"] == "worker_lost"
    run_row = SegmentJobRun.objects.get(job=job2)
    assert run_row.status == "failed" and "No heartbeat" in run_row.error_message


def test_jobs_are_invisible_across_sandboxes(in_acme_prod, acme_dev, globex_prod):
    from portal.scope import sandbox_scope

    audience = definition("US", 'homeAddress.countryISO = "US"')
    job = run([str(audience.pk)])
    for other in (acme_dev, globex_prod):
        with sandbox_scope(other):
            with pytest.raises(SiftError):
                batch.segment_job_get(job_id=job.pk)
            with pytest.raises(SiftError):
                batch.segment_job_create(segment_ids=[str(audience.pk)], source="api", now=NOW)
            assert batch.segment_job_create(segment_ids="*", source="api", now=NOW,
                                            enqueue=False).progress_total == 0


def test_celery_mode_runs_every_definition_through_tasks(in_acme_prod,
                                                        django_capture_on_commit_callbacks):
    people("US", "CA")
    base = definition("US", 'homeAddress.countryISO = "US"')
    definition("Not US", f'not inSegment("{base.pk}")')
    with django_capture_on_commit_callbacks(execute=True):
        job = batch.segment_job_create(segment_ids="*", source="api", now=NOW)
    job.refresh_from_db()
    assert job.status == "SUCCEEDED"
    assert job.progress_done == 2
