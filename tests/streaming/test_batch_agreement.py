"""Batch and streaming agree: after a stream of events, a batch job at the same instant finds
exactly the members streaming already has, for every streaming definition."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from audiences.models import QUALIFIED, Membership, SegmentDefinition, SegmentJobRun
from audiences.services.batch import segment_job_create, segment_job_run
from audiences.services.datasets import EVENT_SCHEMA_ID, PROFILE_SCHEMA_ID, dataset_create
from audiences.services.ingest import ingest_records
from tests.factories import make_definition

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
TYPES = ["commerce.checkouts", "directMarketing.emailClicked", "web.webpagedetails.pageViews"]
DEFINITIONS = {
    "single event": 'CHAIN(xEvent, timestamp, [C0: WHAT(eventType.equals("commerce.checkouts", '
                    'false)) WHEN(<= 3 hours before now)])',
    "profile only": 'homeAddress.countryISO = "CA"',
    "event + profile": 'homeAddress.countryISO = "US" and CHAIN(xEvent, timestamp, [C0: WHAT('
                       'eventType = "web.webpagedetails.pageViews") WHEN(<= 1 hours before now)])',
    "multiple events": 'CHAIN(xEvent, timestamp, [C0: WHAT(eventType = '
                       '"directMarketing.emailClicked") WHEN(today), C1: WHAT(eventType = '
                       '"commerce.checkouts") WHEN(today)])',
}


def stamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def test_a_batch_job_after_a_stream_changes_no_streaming_membership(
        in_acme_prod, django_capture_on_commit_callbacks):
    rng = random.Random(7)
    crm = dataset_create(name="CRM", schema_ref={"id": PROFILE_SCHEMA_ID})
    web = dataset_create(name="Web", schema_ref={"id": EVENT_SCHEMA_ID})
    definitions = {name: make_definition(name=name, expression=pql, evaluation_continuous=True)
                   for name, pql in DEFINITIONS.items()}
    people = [f"p{n}@example.com" for n in range(40)]

    def person(email):
        return {"identityMap": {"Email": [{"id": email, "primary": True}]}}

    with django_capture_on_commit_callbacks(execute=True):
        ingest_records(dataset=crm, now=NOW - timedelta(hours=6), source="import", records=[
            {**person(e), "homeAddress": {"countryISO": rng.choice(["US", "CA", "FR"])}}
            for e in people])
    # Six hours of events, each batch ingested (and streamed) at its own instant.
    for minute in range(0, 360, 15):
        at = NOW - timedelta(minutes=360 - minute)
        records = [{**person(rng.choice(people)), "_id": f"e{minute}-{n}", "timestamp": stamp(at),
                    "eventType": rng.choice(TYPES)} for n in range(6)]
        with django_capture_on_commit_callbacks(execute=True):
            ingest_records(dataset=web, now=at, source="streaming", records=records)
    with django_capture_on_commit_callbacks(execute=True):
        from audiences.services.streaming import streaming_lapse_sweep

        streaming_lapse_sweep(now=NOW)  # the windows that lapsed by now, as beat would have

    def members(definition: SegmentDefinition) -> set[int]:
        return set(Membership.objects.filter(definition=definition, status__in=QUALIFIED)
                   .values_list("profile_id", flat=True))

    streamed = {name: members(d) for name, d in definitions.items()}
    assert any(streamed.values())  # the stream did qualify people
    job = segment_job_create(segment_ids=[str(d.pk) for d in definitions.values()],
                             source="api", now=NOW, enqueue=False)
    with django_capture_on_commit_callbacks(execute=True):
        segment_job_run(job_id=job.pk, now=NOW, inline=True)
    assert SegmentJobRun.objects.filter(job=job, status="succeeded").count() == 4
    batched = {name: members(d) for name, d in definitions.items()}
    assert batched == streamed
