"""Records per second through `ingest_records` (the path every endpoint and import uses), for
profile records and for experience events, on the configured database.

A throw-away sandbox is created in the organization `BENCH0000@AdobeOrg` with two merge
policies (the default pdg/timestampOrdered one and a `none` one), so every record refreshes two
merged profiles. Profile records carry three identities (CRMID primary, Email, Phone); events
carry an ECID, and one in three also the Email (a signed-in visit, which links graphs). Events
are measured twice: first from new visitors (identities created, graphs merged), then as many
again from the same visitors (the steady state: profiles only gain events). The sandbox is
deleted afterwards unless `--keep`. Run:

    python manage.py benchmark ingest [--profiles 5000] [--events 20000] [--batch 1000]
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime, timedelta

from audiences.services.datasets import EVENT_SCHEMA_ID, PROFILE_SCHEMA_ID, dataset_create
from audiences.services.ingest import ingest_records
from audiences.services.merge_policies import merge_policy_create
from portal.models import Sandbox
from portal.scope import sandbox_scope
from portal.services import organization_create, sandbox_create

BENCH_ORG = "BENCH0000@AdobeOrg"
EVENT_TYPES = ["web.webpagedetails.pageViews", "commerce.productViews",
               "commerce.productListAdds", "commerce.checkouts"]


def add_arguments(parser) -> None:
    parser.add_argument("--profiles", type=int, default=5000)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=1000, help="records per ingest call")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark sandbox")


def profile_records(count: int, rng: random.Random) -> list[dict]:
    return [{"identityMap": {"CRMID": [{"id": f"CRM{n}", "primary": True}],
                             "Email": [{"id": f"p{n}@example.com"}],
                             "Phone": [{"id": f"+1555{n:07d}"}]},
             "person": {"name": {"firstName": f"P{n}", "lastName": "Bench"}},
             "homeAddress": {"stateProvince": rng.choice(["CA", "NY", "TX"]),
                             "countryISO": "US"},
             "loyalty": {"points": rng.randint(0, 5000)}} for n in range(count)]


def event_records(count: int, people: int, rng: random.Random, now: datetime) -> list[dict]:
    records = []
    for n in range(count):
        who = rng.randrange(max(people, 1))
        identity_map = {"ECID": [{"id": f"{who:038d}", "primary": True}]}
        if n % 3 == 0:
            identity_map["Email"] = [{"id": f"p{who}@example.com"}]
        records.append({"_id": uuid.uuid4().hex, "eventType": rng.choice(EVENT_TYPES),
                        "timestamp": (now - timedelta(seconds=count - n)).isoformat(),
                        "identityMap": identity_map,
                        "web": {"webPageDetails": {"name": f"page-{rng.randint(1, 50)}"}},
                        "commerce": {"order": {"priceTotal": rng.randint(5, 500)}}})
    return records


def _timed(dataset, records: list[dict], batch: int, now: datetime) -> tuple[float, int]:
    started, accepted = time.perf_counter(), 0
    for start in range(0, len(records), batch):
        result = ingest_records(dataset=dataset, records=records[start:start + batch], now=now,
                                source="import")
        accepted += result.accepted
    return time.perf_counter() - started, accepted


def run(options, stdout) -> dict:
    rng = random.Random(11)
    now = datetime.now(UTC)
    organization_create(ims_org_id=BENCH_ORG, name="Benchmarks")
    sandbox, _ = sandbox_create(ims_org_id=BENCH_ORG, name=f"ingest-{uuid.uuid4().hex[:8]}")
    try:
        with sandbox_scope(sandbox):
            merge_policy_create(name="Per identity", identity_graph="none", now=now)
            crm = dataset_create(name="Bench CRM", schema_ref={"id": PROFILE_SCHEMA_ID})
            web = dataset_create(name="Bench web", schema_ref={"id": EVENT_SCHEMA_ID})
            profiles = profile_records(options["profiles"], rng)
            events = event_records(options["events"], options["profiles"], rng, now)
            p_seconds, p_accepted = _timed(crm, profiles, options["batch"], now)
            e_seconds, e_accepted = _timed(web, events, options["batch"], now)
            # Same visitors again: identities and graphs exist, profiles only gain events.
            again = event_records(options["events"], options["profiles"], rng, now)
            k_seconds, k_accepted = _timed(web, again, options["batch"], now)
    finally:
        if not options["keep"]:
            Sandbox.objects.filter(pk=sandbox.pk).delete()
    numbers = {"profiles": p_accepted, "profile_seconds": round(p_seconds, 2),
               "profiles_per_second": round(p_accepted / p_seconds) if p_seconds else 0,
               "events": e_accepted, "event_seconds": round(e_seconds, 2),
               "events_per_second": round(e_accepted / e_seconds) if e_seconds else 0,
               "known_events": k_accepted, "known_event_seconds": round(k_seconds, 2),
               "known_events_per_second": round(k_accepted / k_seconds) if k_seconds else 0,
               "batch": options["batch"]}
    stdout.write(f"ingest_records, batches of {options['batch']}, 2 merge policies\n"
                 f"profile records:        {p_accepted:>8} in {p_seconds:6.2f} s = "
                 f"{numbers['profiles_per_second']:>8,} records/s\n"
                 f"events, new visitors:   {e_accepted:>8} in {e_seconds:6.2f} s = "
                 f"{numbers['events_per_second']:>8,} events/s\n"
                 f"events, known visitors: {k_accepted:>8} in {k_seconds:6.2f} s = "
                 f"{numbers['known_events_per_second']:>8,} events/s\n")
    return numbers
