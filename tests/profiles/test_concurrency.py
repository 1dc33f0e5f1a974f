"""Two requests merging the same graphs at the same time leave one consistent graph."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from audiences.models import Event, Identity, MergePolicy, Profile
from audiences.services.datasets import EVENT_SCHEMA_ID, PROFILE_SCHEMA_ID, dataset_create
from audiences.services.ingest import ingest_records
from portal.scope import sandbox_scope
from tests.profiles.conftest import NOW, event, person

pytestmark = pytest.mark.django_db(transaction=True)
ROUNDS = 8


def test_concurrent_merges_of_the_same_graphs_stay_consistent(acme_prod):
    if connection.vendor != "postgresql":
        pytest.skip("row locks and advisory locks are a PostgreSQL matter; SQLite serialises "
                    "every writer")
    with sandbox_scope(acme_prod):
        crm = dataset_create(name="CRM", schema_ref={"id": PROFILE_SCHEMA_ID})
        web = dataset_create(name="Web", schema_ref={"id": EVENT_SCHEMA_ID})
        ingest_records(dataset=crm, records=[person({"CRMID": f"{r}-{x}"}, tag={"x": x})
                                             for r in range(ROUNDS) for x in "abc"],
                       now=NOW, source="import")
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def send(pairs: list[tuple[str, str]], name: str) -> None:
        try:
            with sandbox_scope(acme_prod):
                for round_, (left, right) in enumerate(pairs):
                    start.wait(timeout=30)
                    record = {**event(f"{name}-{round_}", {}), "identityMap": {"CRMID": [
                        {"id": f"{round_}-{left}", "primary": True}, {"id": f"{round_}-{right}"}]}}
                    result = ingest_records(dataset=web, records=[record], now=NOW,
                                            source="streaming")
                    assert not result.rejected, result.rejected
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send, args=([("a", "b")] * ROUNDS, "t1")),
               threading.Thread(target=send, args=([("b", "c")] * ROUNDS, "t2"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    with sandbox_scope(acme_prod):
        policy = MergePolicy.objects.get(is_default=True)
        for round_ in range(ROUNDS):
            identities = list(Identity.objects.filter(value__startswith=f"{round_}-"))
            assert len({i.cluster_id for i in identities}) == 1
            assert identities[0].cluster_id == min(i.pk for i in identities)
            cluster = identities[0].cluster_id
            assert set(Event.objects.filter(event_id__endswith=f"-{round_}")
                       .values_list("cluster_id", flat=True)) == {cluster}
            profile = Profile.objects.get(merge_policy=policy, entity_id=cluster)
            assert profile.identity_count == 3
            assert profile.attributes["tag"]["x"] in "abc"
        assert Profile.objects.filter(merge_policy=policy).count() == ROUNDS
