"""Edge segmentation through `POST /data/core/ups/edge/evaluate`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from audiences.models import Event, Membership, MergePolicy
from audiences.services.datasets import PROFILE_SCHEMA_ID, dataset_create
from audiences.services.ingest import ingest_records
from portal.scope import sandbox_scope
from tests.factories import make_definition

PATH = "/data/core/ups/edge/evaluate"
BROWSING = ('CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "web.webpagedetails.pageViews") '
            "WHEN(<= 30 minutes before now)])")


@pytest.fixture
def edge_setup(acme_prod):
    with sandbox_scope(acme_prod):
        crm = dataset_create(name="CRM", schema_ref={"id": PROFILE_SCHEMA_ID})
        ingest_records(dataset=crm, now=datetime.now(UTC), source="import", records=[
            {"identityMap": {"Email": [{"id": "gold@example.com", "primary": True}]},
             "loyalty": {"tier": "gold"}},
            {"identityMap": {"Email": [{"id": "bronze@example.com", "primary": True}]},
             "loyalty": {"tier": "bronze"}},
        ])
        gold = make_definition(name="Gold", expression='loyalty.tier = "gold"',
                               evaluation_synchronous=True)
        browsing = make_definition(name="Browsing now", expression=BROWSING,
                                   evaluation_synchronous=True)
        batch_only = make_definition(name="Gold (batch)", expression='loyalty.tier = "gold"')
    return {"gold": gold, "browsing": browsing, "batch_only": batch_only}


def ids(body) -> set[str]:
    return {s["id"] for s in body["segments"]}


def test_a_known_profile_gets_its_edge_audiences(bob, edge_setup):
    response = bob.api("prod").post(PATH, {"identity": {"namespace": "Email",
                                                        "id": "gold@example.com"}})
    assert response.status_code == 200, response.content
    body = response.json()
    assert ids(body) == {str(edge_setup["gold"].pk)}
    assert body["segments"][0]["status"] == "realized"
    assert body["evaluated"] == 2  # only edge definitions; the batch one is not evaluated
    with sandbox_scope(edge_setup["gold"].sandbox):
        assert not Membership.objects.filter(definition=edge_setup["batch_only"]).exists()
        row = Membership.objects.get(definition=edge_setup["gold"])
        assert row.source == "edge"


def test_the_event_is_ingested_and_counts_at_once(bob, edge_setup):
    api = bob.api("prod")
    body = api.post(PATH, {"identity": {"namespace": "Email", "id": "bronze@example.com"},
                           "event": {"eventType": "web.webpagedetails.pageViews"}}).json()
    assert ids(body) == {str(edge_setup["browsing"].pk)}
    with sandbox_scope(edge_setup["gold"].sandbox):
        assert Event.objects.filter(event_id=body["eventId"]).count() == 1


def test_an_unknown_identity_is_an_empty_profile_plus_its_event(bob, edge_setup):
    api = bob.api("prod")
    body = api.post(PATH, {"identity": {"namespace": "ECID", "id": "1234567890"}}).json()
    assert body["segments"] == [] and body["profile"] is None
    body = api.post(PATH, {"identity": {"namespace": "ECID", "id": "1234567890"},
                           "event": {"eventType": "web.webpagedetails.pageViews"}}).json()
    assert ids(body) == {str(edge_setup["browsing"].pk)}
    assert body["profile"]["identityMap"]["ECID"][0]["id"] == "1234567890"


def test_bad_input_says_what_is_wrong(bob, edge_setup):
    response = bob.api("prod").post(PATH, {"identity": {"namespace": "Email"}})
    assert response.status_code == 400
    assert "id" in response.content.decode()


def test_without_an_active_on_edge_policy_edge_evaluation_is_refused(bob, edge_setup):
    with sandbox_scope(edge_setup["gold"].sandbox):
        MergePolicy.objects.update(is_active_on_edge=False)
    response = bob.api("prod").post(PATH, {"identity": {"namespace": "Email",
                                                        "id": "gold@example.com"}})
    assert response.status_code == 409
    assert "active-on-edge" in response.json()["detail"]


def test_another_organization_cannot_read_the_profile(charlie, edge_setup):
    body = charlie.api("prod").post(PATH, {"identity": {"namespace": "Email",
                                                        "id": "gold@example.com"}}).json()
    assert body["segments"] == [] and body["profile"] is None
