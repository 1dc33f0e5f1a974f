"""A delivery through a real Redis broker and a real `celery worker` on the deliveries queue."""

from __future__ import annotations

import pytest
from django.utils import timezone

from audiences.models import Delivery
from audiences.services.memberships import membership_apply
from tests.destinations.conftest import activated_webhook
from tests.fixtures.services import WorkerProcess, wait_for

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def deliveries_worker(redis_broker):
    """A worker that consumes ONLY the deliveries queue: the route must send the task there."""
    worker = WorkerProcess(redis_broker, "deliveries")
    yield worker
    worker.stop()


def test_a_streaming_change_is_delivered_by_a_worker_on_the_deliveries_queue(
        in_acme_prod, receiver, deliveries_worker):
    setup = activated_webhook(receiver, profiles=2)
    membership_apply(definition=setup.definition,
                     results={p.pk: True for p in setup.profiles}, at=timezone.now(),
                     source="streaming")
    [request] = receiver.wait_for(1, timeout=30)
    assert sorted(c["identities"][0] for c in request.changes) == sorted(
        p.primary_id for p in setup.profiles)
    wait_for(lambda: Delivery.objects.filter(status="delivered").count() == 2, timeout=10,
             message="the worker did not record both deliveries as delivered")
    assert deliveries_worker.proc.poll() is None
