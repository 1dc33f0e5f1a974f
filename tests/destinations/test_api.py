"""`/data/core/ups/config/destinations`: personas, paging, errors, isolation."""

from __future__ import annotations

import pytest
from django.utils import timezone

from audiences.models import Delivery
from portal.scope import sandbox_scope
from tests.api.conftest import DEFINITIONS, definition_body

DESTINATIONS = "/data/core/ups/config/destinations"
WEBHOOK = {"name": "CRM", "kind": "webhook", "url": "https://crm.example.com/hooks"}

pytestmark = pytest.mark.django_db


def create(persona, body=None, sandbox=None):
    response = persona.api(sandbox).post(DESTINATIONS, body or WEBHOOK)
    assert response.status_code == 201, response.json()
    return response.json()


def test_a_marketer_creates_lists_gets_patches_and_deletes_a_destination(bob):
    api = bob.api()
    created = create(bob)
    assert created["kind"] == "webhook" and len(created["secret"]) > 30
    assert api.get(DESTINATIONS).json()["destinations"][0]["id"] == created["id"]
    detail = api.get(f"{DESTINATIONS}/{created['id']}").json()
    assert detail["deliveries"] == {"pending": 0, "delivered": 0, "dead": 0}
    patched = api.patch(f"{DESTINATIONS}/{created['id']}",
                        {"name": "CRM v2", "rotateSecret": True}).json()
    assert patched["name"] == "CRM v2" and patched["secret"] != created["secret"]
    assert api.delete(f"{DESTINATIONS}/{created['id']}").json()["status"] is True
    assert api.get(f"{DESTINATIONS}/{created['id']}").status_code == 404


def test_bad_input_names_the_field_in_the_one_error_shape(alice):
    api = alice.api()
    response = api.post(DESTINATIONS, {**WEBHOOK, "url": "ftp://example.com/x"})
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "invalid" and body["report"]["field"] == "url"
    response = api.post(DESTINATIONS, {"name": "F", "kind": "file", "folder": "../up"})
    assert response.json()["report"]["field"] == "folder"
    create(alice)
    assert api.post(DESTINATIONS, WEBHOOK).json()["error_code"] == "already_exists"
    assert api.get(DESTINATIONS, {"kind": "fax"}).status_code == 400
    assert api.patch(f"{DESTINATIONS}/not-a-uuid", {"name": "x"}).status_code == 404


def test_a_viewer_reads_without_the_secret_and_cannot_write(alice, victor):
    created = create(alice)
    listed = victor.api().get(DESTINATIONS).json()["destinations"]
    assert [d["id"] for d in listed] == [created["id"]] and "secret" not in listed[0]
    assert victor.api().post(DESTINATIONS, {**WEBHOOK, "name": "Other"}).status_code == 403
    assert victor.api().delete(f"{DESTINATIONS}/{created['id']}").status_code == 403


def test_another_organization_sees_nothing(alice, charlie):
    created = create(alice)
    assert charlie.api().get(DESTINATIONS).json()["destinations"] == []
    for method in ("get", "delete"):
        response = getattr(charlie.api(), method)(f"{DESTINATIONS}/{created['id']}")
        assert response.status_code == 404 and response.json()["error_code"] == "not_found"
    assert alice.api("dev").get(DESTINATIONS).json()["destinations"] == []  # other sandbox


def test_activations_and_an_activated_audience_refuses_deletion(alice, charlie):
    destination = create(alice)
    audience = alice.api().post(DEFINITIONS, definition_body("Gold")).json()
    activations = f"{DESTINATIONS}/{destination['id']}/activations"
    response = alice.api().post(activations, {"audienceId": audience["id"], "namespace": "ECID",
                                              "attributes": ["person.name.firstName"]})
    assert response.status_code == 200, response.json()
    activation = response.json()
    assert activation["audienceName"] == "Gold" and activation["namespace"] == "ECID"
    assert alice.api().get(activations).json()["page"]["totalCount"] == 1
    bad = alice.api().post(activations, {"audienceId": audience["id"],
                                         "attributes": ["not a path"]})
    assert bad.status_code == 400 and bad.json()["report"]["field"] == "attributes"
    refused = alice.api().delete(f"{DEFINITIONS}/{audience['id']}")
    assert refused.status_code == 400 and refused.json()["error_code"] == "has_activations"
    other = charlie.api().post(DEFINITIONS, definition_body("Globex")).json()
    assert alice.api().post(activations, {"audienceId": other["id"]}).status_code == 404
    patched = alice.api().patch(f"{activations}/{activation['id']}", {"attributes": []})
    assert patched.json()["attributes"] == [] and patched.json()["namespace"] == "ECID"
    assert alice.api().delete(f"{activations}/{activation['id']}").status_code == 200
    assert alice.api().delete(f"{DEFINITIONS}/{audience['id']}").status_code == 200


def test_delivery_history_pages_and_filters_and_only_admins_replay(alice, bob, acme_prod):
    destination = create(alice)
    from audiences.models import Destination

    with sandbox_scope(acme_prod):
        target = Destination.objects.get(pk=destination["id"])
        now = timezone.now()
        Delivery.objects.bulk_create([
            Delivery(destination=target, idempotency_key=f"k{n}", payload={"n": n},
                     status="dead" if n < 3 else "delivered", next_attempt_at=now,
                     created_at=now, attempts=6, last_status_code=500)
            for n in range(5)])
    history = f"{DESTINATIONS}/{destination['id']}/deliveries"
    page = alice.api().get(history, {"limit": 2}).json()
    assert page["page"]["totalCount"] == 5 and len(page["deliveries"]) == 2
    assert "start=2" in page["link"]["next"]
    dead = alice.api().get(history, {"status": "dead"}).json()["deliveries"]
    assert {d["status"] for d in dead} == {"dead"} and len(dead) == 3
    assert bob.api().post(f"{history}/replay", {}).status_code == 403
    response = alice.api().post(f"{history}/replay", {"ids": [dead[0]["id"]]})
    assert response.json() == {"replayed": 1}
