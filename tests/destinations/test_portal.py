"""The Destinations page: list, create, edit, test connection, activation, history, replay."""

from __future__ import annotations

import pytest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from audiences.models import Activation, Delivery, Destination
from audiences.services.destinations import activation_set, destination_create
from portal.scope import sandbox_scope
from tests.factories import make_definition

pytestmark = pytest.mark.django_db


def test_the_page_is_in_the_navigation_and_lists_destinations(alice, acme_prod):
    with sandbox_scope(acme_prod):
        destination_create(name="Email tool", kind="webhook", url="https://e.example.com/h",
                           user=None, now=timezone.now())
    page = alice.web().get(reverse("audiences:destinations"))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'href="/destinations/"' in html and "Email tool" in html
    assert "Create a destination" in html


def test_a_marketer_creates_activates_and_deactivates(bob, acme_prod):
    with sandbox_scope(acme_prod):
        definition = make_definition(name="Cart abandoners")
    web = bob.web()
    response = web.post(reverse("audiences:destinations"), {
        "name": "Hook", "kind": "webhook", "url": "https://hooks.example.com/sift",
        "enabled": "on", "file_format": "csv", "mode": "full", "schedule": "after_job"})
    assert response.status_code == 302
    with sandbox_scope(acme_prod):
        destination = Destination.objects.get(name="Hook")
    detail = reverse("audiences:destination", args=[destination.pk])
    assert response["Location"] == detail
    response = web.post(reverse("audiences:destination_activation_add", args=[destination.pk]),
                        {"definition": str(definition.pk), "namespace": "ECID",
                         "attributes": "person.name.firstName, loyalty.tier"})
    assert response.status_code == 302
    with sandbox_scope(acme_prod):
        activation = Activation.objects.get()
    assert activation.attributes == ["person.name.firstName", "loyalty.tier"]
    html = web.get(detail).content.decode()
    assert "Cart abandoners" in html and "Deactivate" in html
    web.post(reverse("audiences:destination_activation_remove",
                     args=[destination.pk, activation.pk]))
    with sandbox_scope(acme_prod):
        assert not Activation.objects.exists()


def test_a_bad_url_is_shown_next_to_the_form(bob):
    response = bob.web().post(reverse("audiences:destinations"), {
        "name": "Bad", "kind": "webhook", "url": "mailto:x@example.com",
        "file_format": "csv", "mode": "full", "schedule": "after_job"})
    assert response.status_code == 400
    assert "url must be an http" in response.content.decode()


def test_editing_keeps_the_kind_and_a_viewer_cannot_write(alice, victor, acme_prod):
    with sandbox_scope(acme_prod):
        destination = destination_create(name="Files", kind="file", folder="out", user=None,
                                         now=timezone.now())
    response = alice.web().post(reverse("audiences:destination_edit", args=[destination.pk]), {
        "name": "Files v2", "kind": "webhook", "folder": "out/v2", "file_format": "jsonl",
        "mode": "incremental", "schedule": "daily", "enabled": "on"})
    assert response.status_code == 302
    destination.refresh_from_db()
    assert (destination.name, destination.kind, destination.folder, destination.mode) == (
        "Files v2", "file", "out/v2", "incremental")
    assert victor.web().post(reverse("audiences:destinations"), {"name": "x"}).status_code == 403
    assert victor.web().post(reverse("audiences:destination_delete",
                                     args=[destination.pk])).status_code == 403


def test_history_shows_codes_latency_errors_and_only_admins_replay(alice, bob, acme_prod):
    with sandbox_scope(acme_prod):
        destination = destination_create(name="Hook", kind="webhook", url="https://h.example/x",
                                         user=None, now=timezone.now())
        now = timezone.now()
        dead = Delivery.objects.create(
            destination=destination, idempotency_key="k1", status="dead", attempts=6,
            payload={"status": "realized", "audienceName": "Gold"}, next_attempt_at=now,
            created_at=now, last_status_code=503, last_latency_ms=42,
            last_error="HTTP 503: overloaded", last_attempt_at=now)
    detail = reverse("audiences:destination", args=[destination.pk])
    html = alice.web().get(detail, {"status": "dead"}).content.decode()
    assert "503" in html and "42 ms" in html and "HTTP 503: overloaded" in html
    assert "Replay" in html
    assert "Replay" not in bob.web().get(detail).content.decode()
    replay = reverse("audiences:destination_replay", args=[destination.pk])
    assert bob.web().post(replay, {"delivery": dead.pk}).status_code == 403
    # The replayed row is sent after commit; in this (non-transactional) test it stays pending.
    assert alice.web().post(replay, {"delivery": dead.pk}).status_code == 302
    dead.refresh_from_db()
    assert (dead.status, dead.replays, dead.attempts) == ("pending", 1, 0)
    partial = alice.web().get(detail, {"status": "delivered"}, headers={"HX-Request": "true"})
    assert b"<html" not in partial.content and b"No deliveries with status" in partial.content


def test_test_connection_reports_a_failure(alice, acme_prod):
    with sandbox_scope(acme_prod):
        destination = destination_create(name="Nowhere", kind="webhook",
                                          url="http://127.0.0.1:9/", user=None,
                                          now=timezone.now())
    response = alice.web().post(reverse("audiences:destination_test", args=[destination.pk]))
    assert response.status_code == 200 and b"Connection failed" in response.content


def test_another_organization_gets_a_404(alice, charlie, acme_prod):
    with sandbox_scope(acme_prod):
        destination = destination_create(name="Private", kind="webhook",
                                          url="https://p.example/x", user=None,
                                          now=timezone.now())
    url = reverse("audiences:destination", args=[destination.pk])
    assert alice.web().get(url).status_code == 200
    assert charlie.web().get(url).status_code == 404
    assert b"Private" not in charlie.web().get(reverse("audiences:destinations")).content


def test_the_activated_card_lists_the_audience_destinations(alice, acme_prod):
    with sandbox_scope(acme_prod):
        definition = make_definition(name="Gold")
        destination = destination_create(name="Warehouse files", kind="file", folder="wh",
                                         user=None, now=timezone.now())
        html = render_to_string("audiences/destinations/_activated_card.html",
                                {"definition": definition})
        assert "not activated" in html
        activation_set(destination=destination, definition=definition, namespace="Email",
                       user=None, now=timezone.now())
        html = render_to_string("audiences/destinations/_activated_card.html",
                                {"definition": definition})
    assert "Warehouse files" in html and "File export" in html
