"""ingest_records: validation, stitching, merging, dedupe, atomicity, the change announcement."""

from __future__ import annotations

from datetime import timedelta

import pytest

from audiences.models import (
    Event,
    Identity,
    IdentityLink,
    IngestionBatch,
    MergePolicy,
    Profile,
    ProfileFragment,
    SchemaField,
)
from audiences.services.ingest import ingest_records
from audiences.services.merge_policies import merge_policy_create
from audiences.services.profiles import profile_for_identity, profiles_load
from tests.profiles.conftest import NOW, event, person


def default_policy() -> MergePolicy:
    return MergePolicy.objects.get(is_default=True)


def test_good_records_are_kept_and_bad_ones_rejected_with_index_and_reason(crm):
    records = [
        person({"CRMID": "c1", "Email": "a@x.com"}, person={"name": {"firstName": "Ann"}}),
        {"person": {"name": {"firstName": "Nobody"}}},
        person({"CRMID": "c2"}, homeAddress={"city": "Paris"}),
        "not an object",
        {"identityMap": {"Email": [{"id": ""}]}},
    ]
    result = ingest_records(dataset=crm, records=records, now=NOW, source="import")
    assert result.accepted == 2
    assert [index for index, _ in result.rejected] == [1, 3, 4]
    assert "identityMap" in result.rejected[0][1]
    assert "JSON object" in result.rejected[1][1]
    assert "identityMap.Email[0].id" in result.rejected[2][1]
    assert ProfileFragment.objects.count() == 2
    batch = IngestionBatch.objects.get()
    assert (batch.received, batch.accepted, batch.rejected) == (5, 2, 3)
    assert batch.errors[0] == {"index": 1, "reason": result.rejected[0][1]}


def test_events_need_an_id_and_a_parseable_timestamp(web):
    records = [
        event("e1", {"ECID": "1"}),
        {**event("e2", {"ECID": "1"}), "_id": ""},
        {**event("e3", {"ECID": "1"}), "timestamp": "yesterday"},
        {k: v for k, v in event("e4", {"ECID": "1"}).items() if k != "timestamp"},
    ]
    result = ingest_records(dataset=web, records=records, now=NOW, source="streaming")
    assert result.accepted == 1
    reasons = dict(result.rejected)
    assert "_id" in reasons[1]
    assert "timestamp" in reasons[2] and "yesterday" in reasons[2]
    assert "timestamp" in reasons[3]
    assert list(Event.objects.values_list("event_id", flat=True)) == ["e1"]


def test_identities_seen_together_form_one_graph_and_one_profile(crm, web):
    ingest_records(dataset=crm, records=[person({"CRMID": "c1", "Email": "a@x.com"},
                                                loyalty={"tier": "gold"})],
                   now=NOW, source="import")
    ingest_records(dataset=web, records=[event("e1", {"ECID": "111"})], now=NOW,
                   source="streaming")
    assert Profile.objects.filter(merge_policy=default_policy()).count() == 2
    # An event carrying the ECID with the Email bridges the two graphs.
    result = ingest_records(dataset=web, records=[event("e2", {"ECID": "111", "Email": "a@x.com"})],
                            now=NOW + timedelta(minutes=1), source="streaming")
    clusters = set(Identity.objects.values_list("cluster_id", flat=True))
    assert clusters == {min(Identity.objects.values_list("pk", flat=True))}
    assert set(Event.objects.values_list("cluster_id", flat=True)) == clusters
    profile = Profile.objects.get(merge_policy=default_policy())
    assert profile.entity_id == clusters.pop()
    assert profile.identity_count == 3
    assert profile.attributes["loyalty"] == {"tier": "gold"}
    assert set(profile.identity_map) == {"CRMID", "Email", "ECID"}
    assert len(result.change.removed_profile_ids) == 1
    assert result.change.profile_ids == (profile.pk,)
    assert IdentityLink.objects.count() == 2
    document, events = profiles_load(profile_ids=[profile.pk], lookback=None, now=NOW)[profile.pk]
    assert document["loyalty"]["tier"] == "gold"
    assert [e["_id"] for e in events] == ["e1", "e2"]


def test_timestamp_ordered_and_dataset_precedence_resolve_conflicts(crm, loyalty):
    precedence = merge_policy_create(name="CRM first", attribute_merge="dataSetPrecedence",
                                     dataset_order=[crm.pk, loyalty.pk], now=NOW)
    ingest_records(dataset=crm, records=[person({"CRMID": "c1", "Email": "a@x.com"},
                                                homeAddress={"city": "Paris", "zip": "75001"})],
                   now=NOW, source="import")
    ingest_records(dataset=loyalty, records=[person({"LoyaltyID": "L1", "Email": "a@x.com"},
                                                    homeAddress={"city": "Lyon"})],
                   now=NOW + timedelta(hours=1), source="import")
    newest = profile_for_identity(merge_policy=default_policy(), namespace="email",
                                  value="a@x.com")
    ordered = profile_for_identity(merge_policy=precedence, namespace="Email", value="a@x.com")
    assert newest.attributes["homeAddress"] == {"city": "Lyon", "zip": "75001"}
    assert ordered.attributes["homeAddress"] == {"city": "Paris", "zip": "75001"}


def test_a_custom_timestamp_beats_the_ingestion_time(crm, loyalty):
    ingest_records(dataset=crm, records=[person(
        {"CRMID": "c1", "Email": "a@x.com"}, homeAddress={"city": "Paris"},
        extSourceSystemAudit={"lastUpdatedDate": "2026-11-30T00:00:00Z"})],
        now=NOW, source="import")
    ingest_records(dataset=loyalty, records=[person({"LoyaltyID": "L1", "Email": "a@x.com"},
                                                    homeAddress={"city": "Lyon"})],
                   now=NOW + timedelta(hours=1), source="import")
    profile = profile_for_identity(merge_policy=default_policy(), namespace="Email",
                                   value="a@x.com")
    assert profile.attributes["homeAddress"]["city"] == "Paris"


def test_without_stitching_each_primary_identity_is_its_own_profile(crm, loyalty, web):
    alone = merge_policy_create(name="No stitching", identity_graph="none", now=NOW)
    ingest_records(dataset=crm, records=[person({"CRMID": "c1", "Email": "a@x.com"},
                                                person={"gender": "female"})],
                   now=NOW, source="import")
    ingest_records(dataset=loyalty, records=[person({"LoyaltyID": "L1", "Email": "a@x.com"},
                                                    loyalty={"tier": "gold"})],
                   now=NOW, source="import")
    ingest_records(dataset=web, records=[event("e1", {"LoyaltyID": "L1"})], now=NOW,
                   source="import")
    assert Profile.objects.filter(merge_policy=default_policy()).count() == 1
    assert Profile.objects.filter(merge_policy=alone).count() == 2
    crm_only = profile_for_identity(merge_policy=alone, namespace="CRMID", value="c1")
    assert crm_only.attributes == {"person": {"gender": "female"}}
    assert profile_for_identity(merge_policy=alone, namespace="Email", value="a@x.com") is None
    loyal = profile_for_identity(merge_policy=alone, namespace="LoyaltyID", value="L1")
    stitched = profile_for_identity(merge_policy=default_policy(), namespace="CRMID", value="c1")
    loaded = profiles_load(profile_ids=[loyal.pk, crm_only.pk, stitched.pk], lookback=None,
                           now=NOW)
    assert [e["_id"] for e in loaded[loyal.pk][1]] == ["e1"]
    assert loaded[crm_only.pk][1] == []
    assert [e["_id"] for e in loaded[stitched.pk][1]] == ["e1"]
    assert stitched.attributes == {"person": {"gender": "female"}, "loyalty": {"tier": "gold"}}


def test_the_same_event_is_stored_once(web):
    first = ingest_records(dataset=web, records=[event("e1", {"ECID": "1"}),
                                                 event("e1", {"ECID": "1"})],
                           now=NOW, source="streaming")
    again = ingest_records(dataset=web, records=[event("e1", {"ECID": "1"})],
                           now=NOW, source="streaming")
    assert Event.objects.count() == 1
    assert first.accepted == 2 and first.change.event_ids == ("e1",)
    assert again.accepted == 1 and again.change.event_ids == ()


def test_profile_records_deep_merge_into_their_fragment(crm):
    ingest_records(dataset=crm, records=[person({"CRMID": "c1"}, homeAddress={"city": "Paris"},
                                                tags=["a", "b"])], now=NOW, source="import")
    ingest_records(dataset=crm, records=[person({"CRMID": "c1"}, homeAddress={"zip": "75001"},
                                                tags=["c"])], now=NOW, source="import")
    fragment = ProfileFragment.objects.get()
    assert fragment.attributes == {"homeAddress": {"city": "Paris", "zip": "75001"},
                                   "tags": ["c"]}


def test_a_failure_mid_request_leaves_nothing_half_written(crm, monkeypatch):
    from audiences.services import ingest

    def broken(self, parsed):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ingest._Store, "_catalogue", broken)
    with pytest.raises(RuntimeError):
        ingest_records(dataset=crm, records=[person({"CRMID": "c1", "Email": "a@x.com"},
                                                    person={"gender": "male"})],
                       now=NOW, source="import")
    assert not Identity.objects.exists()
    assert not ProfileFragment.objects.exists()
    assert not Profile.objects.exists()
    assert not IngestionBatch.objects.exists()


def test_the_change_is_announced_after_commit_with_paths_and_event_types(
        crm, web, settings, django_capture_on_commit_callbacks):
    settings.SIFT_CHANGE_CONSUMERS = ["tests.profiles.test_ingest.record_change"]
    received.clear()
    with django_capture_on_commit_callbacks(execute=True):
        ingest_records(dataset=crm, records=[person({"CRMID": "c1"},
                                                    homeAddress={"city": "Paris"})],
                       now=NOW, source="import")
        assert received == []  # nothing before commit
    with django_capture_on_commit_callbacks(execute=True):
        ingest_records(dataset=web, records=[event("e1", {"CRMID": "c1"},
                                                   event_type="commerce.checkouts")],
                       now=NOW, source="streaming")
    profile = Profile.objects.get()
    first, second = received
    assert first.profile_ids == (profile.pk,)
    assert first.attribute_paths == ("homeAddress.city",)
    assert first.event_types == () and first.source == "import"
    assert second.event_types == ("commerce.checkouts",)
    assert second.event_ids == ("e1",) and second.attribute_paths == ()
    assert second.profile_ids == (profile.pk,) and second.now == NOW


received: list = []


def record_change(*, change) -> None:
    received.append(change)


def test_the_schema_catalogue_learns_paths_types_and_examples(crm, web):
    ingest_records(dataset=crm, records=[person({"CRMID": "c1"}, loyalty={"points": 3}),
                                         person({"CRMID": "c2"}, loyalty={"points": 5})],
                   now=NOW, source="import")
    ingest_records(dataset=web, records=[event("e1", {"CRMID": "c1"})], now=NOW,
                   source="import")
    points = SchemaField.objects.get(class_name="_xdm.context.profile", path="loyalty.points")
    assert (points.type, points.count, points.examples) == ("integer", 2, ["3", "5"])
    assert SchemaField.objects.filter(class_name="_xdm.context.experienceevent",
                                      path="eventType").exists()


def test_sandboxes_do_not_share_identities(crm, acme_dev):
    from portal.scope import sandbox_scope

    ingest_records(dataset=crm, records=[person({"CRMID": "c1"})], now=NOW, source="import")
    with sandbox_scope(acme_dev):
        assert not Identity.objects.exists()
        assert profile_for_identity(merge_policy=MergePolicy.objects.get(is_default=True),
                                    namespace="CRMID", value="c1") is None


def _count_queries(records, dataset) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        ingest_records(dataset=dataset, records=records, now=NOW, source="import")
    return len(captured)


@pytest.mark.parametrize("kind", ["profiles", "events"])
def test_ingestion_is_set_wise_the_query_count_does_not_grow_with_the_batch(kind, crm, web):
    """Ten records or two hundred: about the same number of queries (batched look-ups and
    writes; the first batch also registers the namespaces, and SQLite's 999-parameter limit
    splits a few multi-row statements in two)."""
    def batch(start: int, size: int) -> list[dict]:
        if kind == "profiles":
            return [person({"CRMID": f"c{n}", "Email": f"{n}@x.com"}, loyalty={"points": n})
                    for n in range(start, start + size)]
        return [event(f"e{n}", {"ECID": f"{n}", "Email": f"{n}@x.com"})
                for n in range(start, start + size)]

    dataset = crm if kind == "profiles" else web
    small = _count_queries(batch(0, 10), dataset)
    large = _count_queries(batch(1000, 200), dataset)
    assert abs(large - small) <= 6
    assert large < 40


def test_records_postgres_could_not_store_are_rejected_not_crashed(web):
    result = ingest_records(dataset=web, records=[
        event("e1", {"ECID": "1"}, note="nul \x00 here"),
        event("e2", {"ECID": "1"}, note="lone \ud800 surrogate"),
        event("e3", {"ECID": "1"}, padding="x" * 11_000),
    ], now=NOW, source="streaming")
    assert [index for index, _ in result.rejected] == [0, 1, 2]
    assert "NUL" in result.rejected[0][1] and "UTF-8" in result.rejected[1][1]
    assert "limit" in result.rejected[2][1]


def test_profiles_load_respects_the_lookback_and_the_policys_event_datasets(crm, web, scoped):
    from audiences.services.datasets import EVENT_SCHEMA_ID, dataset_create

    email = dataset_create(name="Email events", schema_ref={"id": EVENT_SCHEMA_ID})
    only_web = merge_policy_create(name="Web only", event_datasets=[web.pk], now=NOW)
    ingest_records(dataset=web, records=[
        event("old", {"CRMID": "c1"}, at=NOW - timedelta(days=3)),
        event("new", {"CRMID": "c1"}, at=NOW - timedelta(hours=1))], now=NOW, source="import")
    ingest_records(dataset=email, records=[event("mail", {"CRMID": "c1"}, at=NOW)],
                   now=NOW, source="import")
    everything = profile_for_identity(merge_policy=default_policy(), namespace="CRMID",
                                      value="c1")
    web_only = profile_for_identity(merge_policy=only_web, namespace="CRMID", value="c1")
    loaded = profiles_load(profile_ids=[everything.pk, web_only.pk],
                           lookback=timedelta(days=1), now=NOW)
    assert [e["_id"] for e in loaded[everything.pk][1]] == ["new", "mail"]
    assert [e["_id"] for e in loaded[web_only.pk][1]] == ["new"]
    unbounded = profiles_load(profile_ids=[web_only.pk], lookback=None, now=NOW)
    assert [e["_id"] for e in unbounded[web_only.pk][1]] == ["old", "new"]


def test_a_deadlocked_transaction_is_run_again(crm, monkeypatch):
    """PostgreSQL aborts one of two deadlocked transactions; ingestion retries it whole."""
    from django.db import OperationalError

    from audiences.services import ingest

    class Deadlock(Exception):
        sqlstate = "40P01"

    real = ingest._Store._catalogue
    calls = []

    def flaky(self, parsed):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("deadlock detected") from Deadlock()
        return real(self, parsed)

    monkeypatch.setattr(ingest._Store, "_catalogue", flaky)
    monkeypatch.setattr(ingest, "_can_retry", lambda: True)  # the test runs inside a transaction
    result = ingest_records(dataset=crm, records=[person({"CRMID": "c1"})], now=NOW,
                            source="import")
    assert len(calls) == 2 and result.accepted == 1
    assert ProfileFragment.objects.count() == 1 and IngestionBatch.objects.count() == 1


def test_deleting_a_dataset_or_a_sandbox_deletes_its_events(web, acme_prod):
    # Events keep no database constraint to their sandbox and dataset (hot parent rows);
    # the ORM's cascade is what removes them.
    from audiences.services.bootstrap import sandbox_purge
    from audiences.services.datasets import EVENT_SCHEMA_ID, dataset_create

    other = dataset_create(name="App", schema_ref={"id": EVENT_SCHEMA_ID})
    ingest_records(dataset=web, records=[event("w1", {"ECID": "1"})], now=NOW,
                   source="streaming")
    ingest_records(dataset=other, records=[event("a1", {"ECID": "1"})], now=NOW,
                   source="streaming")
    web.delete()
    assert list(Event.objects.values_list("event_id", flat=True)) == ["a1"]
    sandbox_purge(sandbox=acme_prod)
    assert not Event.objects.unscoped().filter(sandbox_id=acme_prod.pk).exists()
