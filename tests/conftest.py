"""Shared fixtures: two organizations whose sandboxes share a name, and people in them.

Personas (healthchecks style):
- alice: admin of ACME (sandboxes prod + dev)
- bob: marketer of ACME
- victor: viewer of ACME
- charlie: admin of GLOBEX, whose default sandbox is also called prod
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from django.test import Client

from portal.models import Organization, Sandbox
from portal.scope import sandbox_scope
from portal.services import api_token_create, organization_create, sandbox_create, user_create

pytest_plugins = ["tests.fixtures.services", "tests.fixtures.browser"]

ACME = "ACME1234@AdobeOrg"
GLOBEX = "GLOBEX99@AdobeOrg"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@dataclass
class Persona:
    username: str
    password: str
    role: str
    org: Organization
    token: str

    def api(self, sandbox: str | None = None, org: str | None = None) -> ApiClient:
        return ApiClient(self.token, org or self.org.ims_org_id, sandbox)

    def web(self) -> Client:
        client = Client()
        assert client.login(username=self.username, password=self.password)
        return client


class ApiClient:
    """A Django test client that sends Adobe's headers on every request."""

    def __init__(self, token: str | None, org: str | None, sandbox: str | None) -> None:
        self.client = Client()
        self.headers = {"x-api-key": "test-client"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        if org:
            self.headers["x-gw-ims-org-id"] = org
        if sandbox:
            self.headers["x-sandbox-name"] = sandbox

    def _call(self, method: str, path: str, data=None, **extra):
        headers = {**self.headers, **extra.pop("headers", {})}
        kwargs = {"headers": headers, **extra}
        if data is not None:
            kwargs.setdefault("content_type", "application/json")
            kwargs["data"] = data
        return getattr(self.client, method)(path, **kwargs)

    def get(self, path, data=None, **extra):
        return self.client.get(path, data=data, headers={**self.headers,
                                                          **extra.pop("headers", {})}, **extra)

    def post(self, path, data=None, **extra):
        return self._call("post", path, data, **extra)

    def put(self, path, data=None, **extra):
        return self._call("put", path, data, **extra)

    def patch(self, path, data=None, **extra):
        return self._call("patch", path, data, **extra)

    def delete(self, path, data=None, **extra):
        return self._call("delete", path, data, **extra)


def _persona(username: str, role: str, ims_org_id: str) -> Persona:
    user_create(username=username, ims_org_id=ims_org_id, role=role, password=username + "-pw")
    _, raw = api_token_create(username=username, ims_org_id=ims_org_id)
    return Persona(username, username + "-pw", role,
                   Organization.objects.get(ims_org_id=ims_org_id), raw)


@pytest.fixture
def acme(db) -> Organization:
    org, _ = organization_create(ims_org_id=ACME, name="Acme")
    sandbox_create(ims_org_id=ACME, name="dev")
    return org


@pytest.fixture
def globex(db) -> Organization:
    org, _ = organization_create(ims_org_id=GLOBEX, name="Globex")
    return org


@pytest.fixture
def acme_prod(acme) -> Sandbox:
    return acme.sandboxes.get(name="prod")


@pytest.fixture
def acme_dev(acme) -> Sandbox:
    return acme.sandboxes.get(name="dev")


@pytest.fixture
def globex_prod(globex) -> Sandbox:
    return globex.sandboxes.get(name="prod")


@pytest.fixture
def alice(acme) -> Persona:
    return _persona("alice", "admin", ACME)


@pytest.fixture
def bob(acme) -> Persona:
    return _persona("bob", "marketer", ACME)


@pytest.fixture
def victor(acme) -> Persona:
    return _persona("victor", "viewer", ACME)


@pytest.fixture
def charlie(globex) -> Persona:
    return _persona("charlie", "admin", GLOBEX)


@pytest.fixture
def in_acme_prod(acme_prod):
    """Run the test body inside ACME's prod sandbox scope."""
    with sandbox_scope(acme_prod):
        yield acme_prod


def pytest_collection_modifyitems(config, items):
    """Tests that start a Celery worker share one Redis database and one set of queues: a
    worker started by one xdist process would take another's tasks (and run them against the
    wrong test database). Keep every `services` test on the same xdist process."""
    for item in items:
        if item.get_closest_marker("services"):
            item.add_marker(pytest.mark.xdist_group("redis-services"))
