"""Shared set-up for the benchmarks that need stored data: a throw-away sandbox of its own."""

from __future__ import annotations

import random
from datetime import datetime

from portal.models import Sandbox
from portal.scope import sandbox_scope
from portal.services import organization_create, sandbox_create

BENCH_ORG = "BENCH0000@AdobeOrg"
COUNTRIES = ["US", "US", "US", "CA", "FR", "DE", "GB"]
TIERS = ["bronze", "silver", "gold", "platinum"]


def fresh_sandbox(name: str) -> Sandbox:
    """An empty sandbox `name` in the benchmark organization (a previous one is deleted)."""
    organization_create(ims_org_id=BENCH_ORG, name="Benchmarks", sandbox_name="prod")
    from audiences.services.bootstrap import sandbox_purge

    for old in Sandbox.objects.filter(organization__ims_org_id=BENCH_ORG, name=name):
        sandbox_purge(sandbox=old)
    sandbox, _ = sandbox_create(ims_org_id=BENCH_ORG, name=name)
    return sandbox


def datasets(sandbox: Sandbox):
    """A profile and an event dataset, enabled for Profile, through the catalog service."""
    from audiences.services.datasets import dataset_create

    enabled = {"unifiedProfile": ["enabled:true"], "unifiedIdentity": ["enabled:true"]}
    with sandbox_scope(sandbox):
        people = dataset_create(name="Bench profiles", tags=enabled,
                                schema_ref={"id": "https://ns.adobe.com/xdm/context/profile"})
        events = dataset_create(name="Bench events", tags=enabled,
                                schema_ref={"id": "https://ns.adobe.com/xdm/context/"
                                                  "experienceevent"})
    return people, events


def people_records(count: int, *, now: datetime, seed: int = 11) -> list[dict]:
    rng = random.Random(seed)
    stamp = now.isoformat().replace("+00:00", "Z")
    return [{
        "identityMap": {"Email": [{"id": f"bench{n}@example.com", "primary": True}]},
        "person": {"name": {"firstName": f"Bench{n}", "lastName": "Person"}},
        "homeAddress": {"countryISO": rng.choice(COUNTRIES)},
        "loyalty": {"tier": rng.choice(TIERS), "points": rng.randint(0, 5000)},
        "_repo": {"modifyDate": stamp},
    } for n in range(count)]


def ingest_in_chunks(dataset, records: list[dict], *, now: datetime, source: str = "import",
                     chunk: int = 2000) -> int:
    from audiences.services.ingest import ingest_records

    accepted = 0
    for start in range(0, len(records), chunk):
        accepted += ingest_records(dataset=dataset, records=records[start:start + chunk],
                                   now=now, source=source).accepted
    return accepted
