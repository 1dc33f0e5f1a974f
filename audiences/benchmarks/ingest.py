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
                                      [--clients 2]

On PostgreSQL a last phase sends the known visitors' events again (new `_id`s) from `--clients`
processes at once, batches dealt out round-robin as a load balancer would to that many web
workers: the machine's throughput, where the single client measures one request stream (which
leaves one of two cores idle while it waits for the database, and the database idle meanwhile).
"""

from __future__ import annotations

import multiprocessing
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

from django.db import connection, connections

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
    parser.add_argument("--clients", type=int, default=2,
                        help="concurrent client processes for the last phase (PostgreSQL)")


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


def _analyze() -> None:
    """PostgreSQL: refresh planner statistics between phases, as autovacuum would in a running
    system (a table that just grew from nothing is otherwise planned as if it were empty or
    as it was before the last benchmark's rows were deleted)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE audiences_identity, audiences_identitylink, audiences_event, "
                           "audiences_profile, audiences_profilefragment")


def _timed(dataset, records: list[dict], batch: int, now: datetime) -> tuple[float, int]:
    """Wall-clock seconds and accepted records; the CPU seconds this process spent (Python,
    not the database server) are kept in `_cpu` for the report."""
    started, cpu, accepted = time.perf_counter(), time.process_time(), 0
    for start in range(0, len(records), batch):
        result = ingest_records(dataset=dataset, records=records[start:start + batch], now=now,
                                source="import")
        accepted += result.accepted
    _cpu.append(time.process_time() - cpu)
    return time.perf_counter() - started, accepted


_cpu: list[float] = []


def _client(job: tuple) -> int:
    """One client process of the concurrent phase: its own connection, its share of batches."""
    sandbox, dataset, batches, now = job
    connections.close_all()  # never share the parent's socket
    accepted = 0
    with sandbox_scope(sandbox):
        for records in batches:
            accepted += ingest_records(dataset=dataset, records=records, now=now,
                                       source="import").accepted
    connections.close_all()
    return accepted


def _concurrent(sandbox, dataset, records: list[dict], batch: int, clients: int,
                now: datetime) -> tuple[float, int]:
    batches = [records[start:start + batch] for start in range(0, len(records), batch)]
    jobs = [(sandbox, dataset, batches[n::clients], now) for n in range(clients)]
    connections.close_all()  # forked children open their own
    with multiprocessing.get_context("fork").Pool(clients) as pool:
        started = time.perf_counter()
        accepted = sum(pool.map(_client, jobs))
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
            _analyze()
            e_seconds, e_accepted = _timed(web, events, options["batch"], now)
            _analyze()
            # Same visitors again: identities and graphs exist, profiles only gain events.
            again = event_records(options["events"], options["profiles"], rng, now)
            k_seconds, k_accepted = _timed(web, again, options["batch"], now)
            c_seconds, c_accepted = 0.0, 0
            if connection.vendor == "postgresql" and options["clients"] > 1:
                more = event_records(options["events"], options["profiles"], rng, now)
                c_seconds, c_accepted = _concurrent(sandbox, web, more, options["batch"],
                                                    options["clients"], now)
    finally:
        if not options["keep"]:
            Sandbox.objects.filter(pk=sandbox.pk).delete()
    p_cpu, e_cpu, k_cpu = _cpu[-3:]
    numbers = {"client_cpu_seconds": [round(c, 2) for c in _cpu[-3:]],
               "profiles": p_accepted, "profile_seconds": round(p_seconds, 2),
               "profiles_per_second": round(p_accepted / p_seconds) if p_seconds else 0,
               "events": e_accepted, "event_seconds": round(e_seconds, 2),
               "events_per_second": round(e_accepted / e_seconds) if e_seconds else 0,
               "known_events": k_accepted, "known_event_seconds": round(k_seconds, 2),
               "known_events_per_second": round(k_accepted / k_seconds) if k_seconds else 0,
               "batch": options["batch"], "clients": options["clients"],
               "concurrent_events": c_accepted,
               "concurrent_events_per_second": round(c_accepted / c_seconds) if c_seconds
               else 0}
    stdout.write(f"ingest_records on {connection.vendor}, batches of {options['batch']}, "
                 "2 merge policies (client CPU = this process, not the database server)\n"
                 f"profile records:        {p_accepted:>8} in {p_seconds:6.2f} s = "
                 f"{numbers['profiles_per_second']:>8,} records/s  (client CPU {p_cpu:.2f} s)\n"
                 f"events, new visitors:   {e_accepted:>8} in {e_seconds:6.2f} s = "
                 f"{numbers['events_per_second']:>8,} events/s   (client CPU {e_cpu:.2f} s)\n"
                 f"events, known visitors: {k_accepted:>8} in {k_seconds:6.2f} s = "
                 f"{numbers['known_events_per_second']:>8,} events/s   (client CPU {k_cpu:.2f} s)"
                 "\n")
    if c_accepted:
        stdout.write(f"known visitors, {options['clients']} clients: {c_accepted:>5} in "
                     f"{c_seconds:6.2f} s = {numbers['concurrent_events_per_second']:>8,} "
                     "events/s\n")
    return numbers
