"""Fixtures for the profile store: datasets in ACME prod and record builders."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from audiences.services.datasets import EVENT_SCHEMA_ID, PROFILE_SCHEMA_ID, dataset_create
from portal.scope import sandbox_scope

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def scoped(acme_prod):
    with sandbox_scope(acme_prod):
        yield acme_prod


@pytest.fixture
def crm(scoped):
    return dataset_create(name="CRM", schema_ref={"id": PROFILE_SCHEMA_ID})


@pytest.fixture
def loyalty(scoped):
    return dataset_create(name="Loyalty", schema_ref={"id": PROFILE_SCHEMA_ID})


@pytest.fixture
def web(scoped):
    return dataset_create(name="Web", schema_ref={"id": EVENT_SCHEMA_ID})


def person(identity_map: dict, **attributes) -> dict:
    return {"identityMap": {ns: [{"id": v, **({"primary": True} if i == 0 else {})}
                                 for v in ([vals] if isinstance(vals, str) else vals)]
                            for i, (ns, vals) in enumerate(identity_map.items())},
            **attributes}


def event(event_id: str, identity_map: dict, *, at: datetime = NOW,
          event_type: str = "web.webpagedetails.pageViews", **payload) -> dict:
    return {"_id": event_id, "timestamp": at.isoformat().replace("+00:00", "Z"),
            "eventType": event_type, **person(identity_map), **payload}
