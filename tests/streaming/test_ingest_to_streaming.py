"""The whole path: records in through ingestion, streaming memberships out, with no job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from audiences.models import Membership, MergePolicy
from audiences.services.datasets import EVENT_SCHEMA_ID, PROFILE_SCHEMA_ID, dataset_create
from audiences.services.ingest import ingest_records
from audiences.services.streaming import streaming_lapse_sweep
from tests.factories import make_definition

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
CHECKOUT_3H = ('CHAIN(xEvent, timestamp, [C0: WHAT(eventType.equals("commerce.checkouts", '
               'false)) WHEN(<= 3 hours before now)])')


def stamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


@pytest.fixture
def datasets(in_acme_prod):
    return (dataset_create(name="CRM", schema_ref={"id": PROFILE_SCHEMA_ID}),
            dataset_create(name="Web", schema_ref={"id": EVENT_SCHEMA_ID}))


def member_emails(definition) -> set[str]:
    return set(Membership.objects.filter(definition=definition, status__in=["realized",
                                                                             "existing"])
               .values_list("profile__primary_id", flat=True))


def test_ingested_events_qualify_and_lapse(datasets, django_capture_on_commit_callbacks):
    crm, web = datasets
    recent = make_definition(name="Recent checkouts", expression=CHECKOUT_3H,
                             evaluation_continuous=True)
    canadians = make_definition(name="Canadians", evaluation_continuous=True,
                                expression='homeAddress.countryISO = "CA"')
    with django_capture_on_commit_callbacks(execute=True):
        ingest_records(dataset=crm, now=NOW, source="import", records=[
            {"identityMap": {"Email": [{"id": "ann@example.com", "primary": True}]},
             "homeAddress": {"countryISO": "CA"}},
            {"identityMap": {"Email": [{"id": "bo@example.com", "primary": True}]},
             "homeAddress": {"countryISO": "US"}}])
    assert member_emails(canadians) == {"ann@example.com"}
    with django_capture_on_commit_callbacks(execute=True):
        ingest_records(dataset=web, now=NOW, source="streaming", records=[
            {"_id": "e1", "timestamp": stamp(NOW - timedelta(minutes=5)),
             "eventType": "commerce.checkouts",
             "identityMap": {"Email": [{"id": "bo@example.com", "primary": True}]}},
            {"_id": "e2", "timestamp": stamp(NOW - timedelta(minutes=5)),
             "eventType": "web.webpagedetails.pageViews",
             "identityMap": {"Email": [{"id": "ann@example.com", "primary": True}]}}])
    assert member_emails(recent) == {"bo@example.com"}
    # A move to Canada arrives as a profile update: only the attribute audience changes.
    with django_capture_on_commit_callbacks(execute=True):
        ingest_records(dataset=crm, now=NOW + timedelta(minutes=1), source="streaming",
                       records=[{"identityMap": {"Email": [{"id": "bo@example.com",
                                                            "primary": True}]},
                                 "homeAddress": {"countryISO": "CA"}}])
    assert member_emails(canadians) == {"ann@example.com", "bo@example.com"}
    streaming_lapse_sweep(now=NOW + timedelta(hours=3))
    assert member_emails(recent) == set()


def test_a_new_identity_that_stitches_two_profiles_keeps_the_memberships_right(
        datasets, django_capture_on_commit_callbacks):
    crm, web = datasets
    recent = make_definition(name="Recent checkouts", expression=CHECKOUT_3H,
                             evaluation_continuous=True)
    with django_capture_on_commit_callbacks(execute=True):
        ingest_records(dataset=web, now=NOW, source="streaming", records=[
            {"_id": "anon", "timestamp": stamp(NOW - timedelta(minutes=5)),
             "eventType": "commerce.checkouts",
             "identityMap": {"ECID": [{"id": "device-1", "primary": True}]}}])
    policy = MergePolicy.objects.get(is_default=True)
    assert Membership.objects.filter(definition=recent, status="realized").count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        # Signing in links the device to the person: the two profiles become one.
        ingest_records(dataset=web, now=NOW + timedelta(minutes=1), source="streaming", records=[
            {"_id": "login", "timestamp": stamp(NOW), "eventType": "web.webpagedetails.pageViews",
             "identityMap": {"ECID": [{"id": "device-1", "primary": True}],
                             "Email": [{"id": "cy@example.com"}]}}])
    live = Membership.objects.filter(definition=recent, status__in=["realized", "existing"],
                                     profile__merge_policy=policy)
    assert live.count() == 1
    assert "cy@example.com" in str(live.get().profile.identity_map)
