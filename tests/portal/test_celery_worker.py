"""A real task through a real Redis to a real `celery worker` process."""

import pytest

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_a_task_round_trips_through_redis_and_a_worker(celery_worker_process):
    from portal.tasks import ping

    result = ping.delay("hello from the test")
    assert result.get(timeout=30) == "hello from the test"
