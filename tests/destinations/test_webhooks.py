"""Webhook deliveries to a real HTTP receiver on loopback, in the embedded default (eager)."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from audiences.models import Delivery, SegmentJob
from audiences.services.destinations import (
    deliveries_enqueue,
    deliveries_retry_sweep,
    delivery_flush,
    delivery_replay,
    destination_test,
    destinations_job_finished,
    retry_delay,
)
from audiences.services.memberships import membership_apply
from tests.destinations.conftest import activated_webhook

pytestmark = pytest.mark.django_db(transaction=True)


def qualify(setup, *, qualifies=True, source="streaming", job_id=None, at=None):
    return membership_apply(definition=setup.definition,
                            results={p.pk: qualifies for p in setup.profiles},
                            at=at or timezone.now(), source=source, job_id=job_id)


@pytest.mark.parametrize("background", [True, False], ids=["background-thread", "inline"])
def test_a_streaming_qualification_reaches_the_receiver_within_a_second(
        in_acme_prod, receiver, settings, background):
    """The embedded default runs deliveries on a background thread; tests usually inline."""
    settings.SIFT_INPROCESS_BACKGROUND = background
    setup = activated_webhook(receiver, profiles=1)
    started = time.monotonic()
    qualify(setup)
    [request] = receiver.wait_for(1, timeout=1.0)
    assert request.at - started < 1.0
    [change] = request.changes
    profile = setup.profiles[0]
    assert change["audienceId"] == str(setup.definition.pk)
    assert change["audienceName"] == setup.definition.name
    assert change["status"] == "realized"
    assert change["identities"] == [profile.primary_id]
    assert change["namespace"] == "Email"
    assert change["attributes"] == {"person.name.firstName": "P0"}
    assert change["idempotencyKey"] == f"{setup.destination.pk}:{change['changeId']}"
    deadline = time.monotonic() + 2
    while (Delivery.objects.filter(status="delivered").count() != 1
           and time.monotonic() < deadline):
        time.sleep(0.02)  # the background thread records the answer just after the receiver
    delivery = Delivery.objects.get()
    assert delivery.status == "delivered" and delivery.attempts == 1
    assert delivery.last_status_code == 200 and delivery.last_latency_ms is not None


def test_an_exited_membership_arrives_as_exited(in_acme_prod, receiver):
    setup = activated_webhook(receiver, profiles=1)
    qualify(setup)
    qualify(setup, qualifies=False)
    requests = receiver.wait_for(2, timeout=2)
    statuses = [c["status"] for r in requests for c in r.changes]
    assert statuses == ["realized", "exited"]
    assert requests[1].changes[0]["previousStatus"] == "realized"


def test_the_signature_verifies_with_the_documented_recipe(in_acme_prod, receiver):
    setup = activated_webhook(receiver, profiles=2)
    qualify(setup)
    [request] = receiver.wait_for(1, timeout=2)
    assert len(request.changes) == 2  # one batch for the changes of one transaction
    timestamp = request.headers["X-Sift-Timestamp"]
    # README recipe: hex HMAC-SHA256 over "<timestamp>.<raw body>" with the secret.
    expected = "sha256=" + hmac.new(setup.destination.secret.encode(),
                                    f"{timestamp}.".encode() + request.body,
                                    hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-Sift-Signature"], expected)
    assert abs(int(timestamp) - time.time()) < 60
    tampered = hmac.new(setup.destination.secret.encode(),
                        f"{timestamp}.".encode() + request.body + b" ", hashlib.sha256)
    assert request.headers["X-Sift-Signature"] != "sha256=" + tampered.hexdigest()


def test_a_failing_receiver_gets_retries_then_a_dead_letter_and_replay_delivers_once(
        in_acme_prod, receiver, settings):
    settings.SIFT_DELIVERY_MAX_ATTEMPTS = 4
    receiver.status = 500
    setup = activated_webhook(receiver, profiles=1)
    qualify(setup)
    receiver.wait_for(1, timeout=2)
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert "HTTP 500" in delivery.last_error
    # Not due yet: a flush now sends nothing.
    assert delivery_flush(destination=setup.destination, now=delivery.last_attempt_at
                          ).failed == 0
    waits = []
    while delivery.status == "pending":
        waits.append(delivery.next_attempt_at - delivery.last_attempt_at)
        delivery_flush(destination=setup.destination, now=delivery.next_attempt_at)
        delivery.refresh_from_db()
    assert waits == [retry_delay(1), retry_delay(2), retry_delay(3)]
    assert waits[1] == 2 * waits[0] and waits[2] == 2 * waits[1]  # exponential backoff
    assert (delivery.status, delivery.attempts) == ("dead", 4)
    assert len(receiver.keys()) == 4 and len(set(receiver.keys())) == 1
    # Dead letters are not retried by the sweep.
    assert deliveries_retry_sweep(now=timezone.now() + timedelta(days=1)) == 0

    receiver.status = 200
    assert delivery_replay(destination=setup.destination, now=timezone.now()) == 1
    receiver.wait_for(5, timeout=2)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.replays, delivery.last_status_code) == ("delivered", 1, 200)
    assert delivery_replay(destination=setup.destination, now=timezone.now()) == 0
    delivery_flush(destination=setup.destination, now=timezone.now() + timedelta(days=1))
    assert len(receiver.requests) == 5  # delivered once after the replay, never again


def test_a_timeout_counts_as_a_failed_attempt(in_acme_prod, receiver, settings):
    settings.SIFT_DELIVERY_TIMEOUT_SECONDS = 0.3
    receiver.delay = 1.0
    setup = activated_webhook(receiver, profiles=1)
    qualify(setup)
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, None)
    assert "timed out" in delivery.last_error.lower()


def test_the_retry_sweep_queues_due_destinations(in_acme_prod, receiver):
    receiver.answer = iter([503, 200]).__next__
    setup = activated_webhook(receiver, profiles=1)
    qualify(setup)
    delivery = Delivery.objects.get()
    assert delivery.status == "pending"
    Delivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert deliveries_retry_sweep(now=timezone.now()) == 1
    receiver.wait_for(2, timeout=2)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)


def test_the_same_change_is_never_enqueued_twice(in_acme_prod, receiver):
    setup = activated_webhook(receiver, profiles=1)
    [change] = qualify(setup)
    receiver.wait_for(1, timeout=2)
    deliveries_enqueue(change_ids=[change.pk, change.pk], now=timezone.now())
    assert Delivery.objects.count() == 1
    time.sleep(0.2)
    assert len(receiver.requests) == 1


def test_batch_changes_wait_for_the_job_to_finish(in_acme_prod, receiver, monkeypatch):
    from audiences.services import destinations

    monkeypatch.setattr(destinations, "ENQUEUE_CHUNK", 1)  # several chunks, one flush
    setup = activated_webhook(receiver, profiles=2)
    now = timezone.now()
    job = SegmentJob.objects.create(snapshot_at=now, created_at=now, updated_at=now)
    qualify(setup, source="batch", job_id=job.pk)
    time.sleep(0.2)
    assert receiver.requests == [] and not Delivery.objects.exists()
    destinations_job_finished(job_id=job.pk)
    [request] = receiver.wait_for(1, timeout=2)
    assert sorted(c["identities"][0] for c in request.changes) == sorted(
        p.primary_id for p in setup.profiles)
    assert {c["source"] for c in request.changes} == {"batch"}


def test_a_deactivated_audience_sends_nothing(in_acme_prod, receiver):
    setup = activated_webhook(receiver, profiles=1)
    setup.activation.delete()
    qualify(setup)
    time.sleep(0.2)
    assert receiver.requests == [] and not Delivery.objects.exists()


def test_test_connection_reports_the_answer(in_acme_prod, receiver):
    setup = activated_webhook(receiver, profiles=0)
    result = destination_test(destination=setup.destination, now=timezone.now())
    assert result.ok and result.status_code == 200
    assert receiver.wait_for(1, timeout=2)[0].json["test"] is True
    receiver.status = 404
    result = destination_test(destination=setup.destination, now=timezone.now())
    assert not result.ok and result.status_code == 404 and "HTTP 404" in result.message


def test_nothing_activated_costs_the_streaming_path_one_query(in_acme_prod, receiver,
                                                               django_assert_num_queries):
    from audiences.services.destinations import destinations_changes_recorded
    from audiences.services.memberships import ChangesRecorded

    setup = activated_webhook(receiver, profiles=1)
    setup.activation.delete()
    announcement = ChangesRecorded(sandbox_id=in_acme_prod.pk, change_ids=(1, 2),
                                   source="streaming")
    with django_assert_num_queries(1):
        destinations_changes_recorded(announcement=announcement)


def test_a_disabled_destination_keeps_its_deliveries_pending(in_acme_prod, receiver):
    from audiences.services.destinations import destination_update

    receiver.status = 500
    setup = activated_webhook(receiver, profiles=1)
    qualify(setup)
    destination_update(destination=setup.destination, changes={"enabled": False},
                       now=timezone.now())
    later = timezone.now() + timedelta(hours=1)
    assert deliveries_retry_sweep(now=later) == 0
    assert delivery_flush(destination=setup.destination, now=later).failed == 0
    assert Delivery.objects.get().attempts == 1 and len(receiver.requests) == 1


def test_two_senders_never_hold_the_same_delivery_until_the_lease_runs_out(in_acme_prod,
                                                                            receiver):
    from audiences.services.destinations import _claim

    setup = activated_webhook(receiver, profiles=0)
    now = timezone.now()
    Delivery.objects.bulk_create([
        Delivery(destination=setup.destination, idempotency_key=f"k{n}", payload={},
                 next_attempt_at=now, created_at=now) for n in range(3)])
    first = _claim(setup.destination, now)
    assert len(first) == 3 and _claim(setup.destination, now) == []
    again = _claim(setup.destination, now + timedelta(minutes=5))  # the first sender died
    assert {d.pk for d in again} == {d.pk for d in first}
    assert {d.claim for d in again} != {d.claim for d in first}


def test_a_change_never_reaches_another_organization_destination(acme_prod, globex_prod,
                                                                  receiver):
    from portal.scope import sandbox_scope

    with sandbox_scope(globex_prod):
        theirs = activated_webhook(receiver, profiles=1, name="Globex hook")
    with sandbox_scope(acme_prod):
        mine = activated_webhook(receiver, profiles=1, name="Acme hook")
        qualify(mine)
    [request] = receiver.wait_for(1, timeout=2)
    time.sleep(0.2)
    assert len(receiver.requests) == 1
    assert request.json["destinationId"] == str(mine.destination.pk)
    assert not Delivery.objects.unscoped().filter(destination=theirs.destination).exists()
