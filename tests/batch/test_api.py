"""The AEP endpoints for segment jobs, schedules and export jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from audiences.models import Membership, Schedule, SegmentJob
from audiences.services.schedules import quartz_to_croniter, schedules_dispatch
from portal.errors import SiftError
from portal.scope import sandbox_scope
from tests.factories import default_policy
from tests.services import profile_data

pytestmark = pytest.mark.django_db

JOBS = "/data/core/ups/segment/jobs"
SCHEDULES = "/data/core/ups/config/schedules"
EXPORTS = "/data/core/ups/export/jobs"


@pytest.fixture
def audience(alice, acme_prod):
    response = alice.api().post("/data/core/ups/segment/definitions", {
        "name": "US", "expression": {"type": "PQL", "format": "pql/text",
                                     "value": 'homeAddress.countryISO = "US"'},
        "schema": {"name": "_xdm.context.profile"}})
    assert response.status_code == 200, response.json()
    with sandbox_scope(acme_prod):
        for country in ("US", "US", "CA"):
            profile_data.person(policy=default_policy(), at=timezone.now(),
                                attributes={"homeAddress": {"countryISO": country}})
    return response.json()["id"]


def test_posting_a_job_runs_it_and_get_shows_the_metrics(alice, audience,
                                                         django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = alice.api().post(JOBS, [{"segmentId": audience}])
    assert response.status_code == 200, response.json()
    job = response.json()
    assert job["status"] == "NEW" and job["segments"][0]["segmentId"] == audience
    detail = alice.api().get(f"{JOBS}/{job['id']}").json()
    assert detail["status"] == "SUCCEEDED"
    assert detail["metrics"]["segmentedProfileCounter"] == {audience: 2}
    assert detail["metrics"]["segmentedProfileByStatusCounter"][audience]["realized"] == 2
    assert detail["runs"][0]["evaluator"] == "sql"
    assert detail["_links"]["cancel"] == {"href": f"{JOBS}/{job['id']}", "method": "DELETE"}


def test_star_and_the_object_form_select_every_batch_definition(alice, audience):
    for body in ([{"segmentId": "*"}], {"schema": {"name": "_xdm.context.profile"},
                                        "segments": [{"segmentId": "*"}]}):
        job = alice.api().post(JOBS, body).json()
        assert job["segments"] == [{"segmentId": "*"}]
        assert job["progress"]["total"] == 1


def test_bad_job_bodies_are_refused_with_the_place(alice, audience):
    for body, where in (([], "body"), ([{"segment": "x"}], "[0].segmentId"),
                        ([{"segmentId": "missing"}], "segmentId")):
        response = alice.api().post(JOBS, body)
        assert response.status_code in (400, 404)
        assert response.json()["report"]["field"] == where


def test_list_filters_by_status_and_snapshot_name_and_pages(alice, acme_prod, audience):
    from audiences.services.batch import segment_job_create

    with sandbox_scope(acme_prod):
        for n in range(3):
            segment_job_create(segment_ids=[audience], source="api", now=timezone.now(),
                               snapshot_name=f"snap{n}", enqueue=False)
    listing = alice.api().get(JOBS, {"limit": 2}).json()
    assert listing["_page"]["totalCount"] == 3 and len(listing["children"]) == 2
    assert "start=2" in listing["_links"]["next"]["href"]
    named = alice.api().get(JOBS, {"snapshot.name": "snap2"}).json()
    assert [c["snapshot"]["name"] for c in named["children"]] == ["snap2"]
    cancelled = alice.api().get(JOBS, {"status": "CANCELLED"}).json()
    assert cancelled["_page"]["totalCount"] == 2  # superseded by the newest
    assert alice.api().get(JOBS, {"status": "BOGUS"}).status_code == 400


def test_delete_cancels_and_a_second_delete_conflicts(alice, acme_prod, audience):
    from audiences.services.batch import segment_job_create

    with sandbox_scope(acme_prod):
        job = segment_job_create(segment_ids="*", source="api", now=timezone.now(),
                                 enqueue=False)
    response = alice.api().delete(f"{JOBS}/{job.pk}")
    assert response.status_code == 200 and response.json()["status"] is True
    assert alice.api().get(f"{JOBS}/{job.pk}").json()["status"] == "CANCELLED"
    assert alice.api().delete(f"{JOBS}/{job.pk}").status_code == 409


def test_jobs_are_invisible_to_other_orgs_and_sandboxes_and_viewers_cannot_start(
        alice, charlie, victor, audience):
    job = alice.api().post(JOBS, [{"segmentId": audience}]).json()
    assert charlie.api().get(f"{JOBS}/{job['id']}").status_code == 404
    assert alice.api("dev").get(f"{JOBS}/{job['id']}").status_code == 404
    assert charlie.api().get(JOBS).json()["_page"]["totalCount"] == 0
    assert victor.api().post(JOBS, [{"segmentId": audience}]).status_code == 403
    assert victor.api().get(f"{JOBS}/{job['id']}").status_code == 200


def test_schedules_crud_with_quartz_cron(alice, charlie, audience):
    body = {"name": "Nightly", "type": "batch_segmentation", "schedule": "0 30 2 * * ?",
            "state": "active", "properties": {"segments": [audience]}}
    created = alice.api().post(SCHEDULES, body).json()
    assert created["schedule"] == "0 30 2 * * ?" and created["state"] == "active"
    url = f"{SCHEDULES}/{created['id']}"
    assert alice.api().get(url).json()["name"] == "Nightly"
    names = [s["name"] for s in alice.api().get(SCHEDULES).json()["children"]]
    assert sorted(names) == ["Daily batch segmentation", "Nightly"]
    assert alice.api().patch(url, [{"op": "add", "path": "/state", "value": "inactive"},
                                   {"op": "replace", "path": "/schedule",
                                    "value": "0 0 1 ? * 2"}]).status_code == 204
    patched = alice.api().get(url).json()
    assert (patched["state"], patched["schedule"]) == ("inactive", "0 0 1 ? * 2")
    assert charlie.api().get(url).status_code == 404
    assert alice.api().delete(url).status_code == 204
    assert alice.api().get(url).status_code == 404


@pytest.mark.parametrize("cron", ["", "0 5 * * *", "0 0 5 * * ? 2030", "0 0 5 LW * ?",
                                  "0 0 25 * * ?", "0 0 5 ? * 8"])
def test_bad_cron_expressions_are_refused_with_the_reason(alice, cron):
    response = alice.api().post(SCHEDULES, {"name": "x", "type": "batch_segmentation",
                                            "schedule": cron or " ",
                                            "properties": {"segments": ["*"]}})
    assert response.status_code == 400
    assert "schedule" in response.json()["detail"] or response.json()["report"]


def test_quartz_weekdays_count_from_sunday():
    assert quartz_to_croniter("0 0 5 ? * 1") == "0 0 5 ? * 0"
    assert quartz_to_croniter("0 0 5 ? * 2-6") == "0 0 5 ? * 1-5"
    assert quartz_to_croniter("0 0 5 ? * 2#1") == "0 0 5 ? * 1#1"
    with pytest.raises(SiftError):
        quartz_to_croniter("0 0 5 ? * 0")


def test_a_due_schedule_starts_one_job_per_due_time(acme_prod, audience,
                                                    django_capture_on_commit_callbacks):
    now = datetime(2026, 11, 20, 5, 0, 30, tzinfo=UTC)
    with sandbox_scope(acme_prod):
        system = Schedule.objects.get(is_system=True)
        Schedule.objects.filter(pk=system.pk).update(next_run_at=now - timedelta(seconds=30))
    with django_capture_on_commit_callbacks(execute=True):
        assert schedules_dispatch(now=now) == 1
    assert schedules_dispatch(now=now) == 0  # claimed: next run is tomorrow
    with sandbox_scope(acme_prod):
        job = SegmentJob.objects.get()
        assert (job.source, job.schedule_id, job.status) == ("scheduler", system.pk,
                                                              "SUCCEEDED")
        system.refresh_from_db()
        assert system.next_run_at == datetime(2026, 11, 21, 5, 0, tzinfo=UTC)
        assert Membership.objects.count() == 2


def test_an_export_schedule_starts_an_export(alice, acme_prod, audience,
                                             django_capture_on_commit_callbacks):
    body = {"name": "Export US", "type": "export", "schedule": "0 0 6 * * ?", "state": "active",
            "properties": {"segments": [audience], "format": "jsonl"}}
    created = alice.api().post(SCHEDULES, body).json()
    now = datetime.fromtimestamp(created["nextRunTime"] / 1000, tz=UTC)
    with django_capture_on_commit_callbacks(execute=True):
        assert schedules_dispatch(now=now) >= 1
    records = alice.api().get(EXPORTS).json()["records"]
    assert records[0]["format"] == "jsonl" and records[0]["status"] == "SUCCEEDED"
