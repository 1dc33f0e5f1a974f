"""Fixtures for the AEP API tests: URL constants and small request builders."""

from __future__ import annotations

import pytest

from audiences.models import MergePolicy
from portal.scope import sandbox_scope

DEFINITIONS = "/data/core/ups/segment/definitions"
AUDIENCES = "/data/core/ups/audiences"


def definition_body(name: str, value: str = 'homeAddress.country = "US"', *,
                    streaming: bool = False, edge: bool = False, batch: bool | None = None,
                    **extra) -> dict:
    body = {
        "name": name,
        "expression": {"type": "PQL", "format": "pql/text", "value": value},
        "schema": {"name": "_xdm.context.profile"},
        **extra,
    }
    if streaming or edge or batch is not None:
        body["evaluationInfo"] = {"batch": {"enabled": bool(batch)},
                                  "continuous": {"enabled": streaming},
                                  "synchronous": {"enabled": edge}}
    return body


@pytest.fixture
def create(alice):
    """POST a definition as alice and return its JSON (asserting the 200)."""
    api = alice.api()

    def _create(name: str, value: str = 'homeAddress.country = "US"', **kwargs) -> dict:
        response = api.post(DEFINITIONS, definition_body(name, value, **kwargs))
        assert response.status_code == 200, response.json()
        return response.json()

    return _create


@pytest.fixture
def second_policy(acme_prod):
    """A merge policy of ACME prod that is NOT active on edge."""
    with sandbox_scope(acme_prod):
        return MergePolicy.objects.create(name="No stitching", identity_graph="none")
