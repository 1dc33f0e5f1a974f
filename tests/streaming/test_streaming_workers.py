"""Streaming through real moving parts: a Celery worker fed by Redis, and two concurrent
evaluations of one profile on PostgreSQL (row locks)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from django.db import connection, connections
from django.utils import timezone

from audiences.models import Membership, MembershipChange, MergePolicy
from audiences.services.streaming import streaming_evaluate, streaming_on_profiles_changed
from portal.scope import sandbox_scope
from tests.factories import make_definition
from tests.fixtures.services import wait_for
from tests.services.profile_data import event, person

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
CLICK_THEN_BUY = ('CHAIN(xEvent, timestamp, '
                  '[C0: WHAT(eventType.equals("directMarketing.emailClicked", false)) WHEN(today), '
                  'C1: WHAT(eventType.equals("commerce.checkouts", false)) WHEN(today)])')

RECENT_TWICE = ('CHAIN(xEvent, timestamp, '
                '[C0: WHAT(eventType.equals("commerce.checkouts", false)) '
                'WHEN(<= 1 hours before now), '
                'C1: WHAT(eventType.equals("commerce.checkouts", false)) '
                'WHEN(<= 1 hours before now)])')


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_worker_on_the_streaming_queue_qualifies_the_profile(in_acme_prod,
                                                              celery_worker_process):
    # A worker evaluates at its own clock, so this test uses the real one.
    now = timezone.now()
    policy = MergePolicy.objects.get(is_default=True)
    definition = make_definition(name="Two recent checkouts", evaluation_continuous=True,
                                 expression=RECENT_TWICE)
    profile, (ident,) = person(policy=policy, attributes={}, at=now)
    event(ident, event_type="commerce.checkouts", at=now - timedelta(minutes=3))
    event(ident, event_type="commerce.checkouts", at=now - timedelta(minutes=2))
    change = SimpleNamespace(sandbox_id=in_acme_prod.pk, profile_ids=(profile.pk,),
                             attribute_paths=(), event_types=("commerce.checkouts",), now=now,
                             event_ids=())
    streaming_on_profiles_changed(change=change)  # enqueued on Redis, not run here
    row = wait_for(lambda: Membership.objects.filter(definition=definition,
                                                     profile=profile).first(),
                   timeout=30, message="the streaming worker did not write the membership")
    assert row.status == "realized"


@pytest.mark.django_db(transaction=True)
def test_concurrent_evaluations_of_one_profile_lose_no_transition(acme_prod):
    if connection.vendor != "postgresql":
        pytest.skip("row locks are a PostgreSQL matter; SQLite serialises every writer")
    with sandbox_scope(acme_prod):
        policy = MergePolicy.objects.get(is_default=True)
        definition = make_definition(name="Clicked then bought", expression=CLICK_THEN_BUY,
                                     evaluation_continuous=True)
        profiles = []
        for _ in range(20):
            profile, (ident,) = person(policy=policy, attributes={}, at=NOW)
            event(ident, event_type="directMarketing.emailClicked", at=NOW - timedelta(hours=2))
            event(ident, event_type="commerce.checkouts", at=NOW - timedelta(hours=1))
            profiles.append(profile)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker(types: list[str]) -> None:
        try:
            for profile in profiles:
                barrier.wait(timeout=10)
                streaming_evaluate(sandbox=acme_prod, profile_ids=[profile.pk],
                                   attribute_paths=[], event_types=types, now=NOW)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(t,))
               for t in (["directMarketing.emailClicked"], ["commerce.checkouts"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    with sandbox_scope(acme_prod):
        assert Membership.objects.filter(definition=definition, status="realized").count() == 20
        # Exactly one transition per profile, although two workers evaluated each at once.
        assert MembershipChange.objects.filter(definition=definition).count() == 20
        definition.refresh_from_db()
        assert definition.realized_count == 20
