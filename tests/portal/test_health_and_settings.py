import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]


def test_health_reports_database_and_broker(db):
    response = Client().get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["database"]["status"] == "ok"
    assert body["broker"] == {"status": "ok", "mode": "in-process"}


def test_health_is_503_when_the_broker_is_down(db, settings):
    from portal.celery import app

    old = (app.conf.broker_url, app.conf.task_always_eager)
    # A port nothing listens on: the check must fail fast and report it.
    app.conf.broker_url, app.conf.task_always_eager = "redis://127.0.0.1:1/0", False
    try:
        response = Client().get("/health")
    finally:
        from tests.fixtures.services import _reset_connections

        app.conf.broker_url, app.conf.task_always_eager = old
        _reset_connections(app)  # later eager tasks must not borrow from a closed pool
    assert response.status_code == 503
    assert response.json()["broker"]["status"] == "error"


def _django_check(env: dict) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("SECRET_KEY", "DEBUG", "SIFT_TESTING", "DATABASE_URL")}
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT,
                          env={**clean, **env}, capture_output=True, text=True, timeout=60)


def test_secret_key_is_required_when_debug_is_off():
    result = _django_check({"DEBUG": "false"})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_settings_reject_a_malformed_boolean():
    result = _django_check({"DEBUG": "maybe", "SECRET_KEY": "x"})
    assert result.returncode != 0
    assert "DEBUG must be true or false" in result.stderr


@pytest.mark.parametrize("env", [{"DEBUG": "true"}, {"SECRET_KEY": "s3cret"}])
def test_settings_load_with_debug_or_a_secret(env):
    result = _django_check(env)
    assert result.returncode == 0, result.stderr
