"""Fixtures for the batch tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _open_celery_pool():
    """Eager Celery (5.7) still borrows a producer from the app's pool; a test elsewhere that
    closes the pool (tests/portal/test_health_and_settings.py) would otherwise make every
    later `.delay()` fail with "Acquire on closed pool". A fresh pool is built on demand."""
    from portal.celery import app
    from tests.fixtures.services import _reset_connections

    if app._pool is not None and getattr(app._pool, "_closed", False):
        _reset_connections(app)
    yield
