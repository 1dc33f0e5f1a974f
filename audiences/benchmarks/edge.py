"""Edge segmentation: time per `POST /data/core/ups/edge/evaluate` request, through the whole
HTTP stack in-process (authentication, sandbox scope, evaluation, membership writes).

    python manage.py benchmark edge [--profiles 2000] [--requests 2000] [--definitions 50]

Half the requests carry an event (it is ingested and counts), half only ask.
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, datetime

from django.db import connections
from django.test import Client

from audiences.benchmarks._setup import (
    BENCH_ORG,
    COUNTRIES,
    TIERS,
    datasets,
    fresh_sandbox,
    ingest_in_chunks,
    people_records,
)
from audiences.benchmarks.streaming import EVENT_TYPES, _percentile
from portal.models import Role
from portal.scope import sandbox_scope
from portal.services import api_token_create, user_create

PATH = "/data/core/ups/edge/evaluate"


def add_arguments(parser) -> None:
    parser.add_argument("--profiles", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--definitions", type=int, default=50)


def edge_mix(count: int) -> list[str]:
    """Edge-eligible definitions: profile attributes, and single events in a short window."""
    mix = []
    for n in range(count):
        if n % 2:
            mix.append(f'CHAIN(xEvent, timestamp, [C0: WHAT(eventType = '
                       f'"{EVENT_TYPES[n % len(EVENT_TYPES)]}") WHEN(<= 1 hours before now)])')
        else:
            mix.append(f'homeAddress.countryISO = "{COUNTRIES[n % len(COUNTRIES)]}" and '
                       f'loyalty.tier = "{TIERS[n % len(TIERS)]}"')
    return mix


def run(options, stdout) -> dict:
    from audiences.services.definitions import definition_create

    rng = random.Random(3)
    sandbox = fresh_sandbox("bench-edge")
    people_ds, _ = datasets(sandbox)
    now = datetime.now(UTC)
    with sandbox_scope(sandbox):
        ingest_in_chunks(people_ds, people_records(options["profiles"], now=now), now=now)
        for n, expression in enumerate(edge_mix(options["definitions"])):
            definition_create(name=f"Edge bench {n:03d}", expression=expression,
                              requested={"batch": True, "edge": True}, user=None, now=now)
    user_create(username="bench-edge", ims_org_id=BENCH_ORG, role=Role.MARKETER)
    _, token = api_token_create(username="bench-edge", ims_org_id=BENCH_ORG, name="edge bench")
    client = Client(HTTP_HOST="127.0.0.1")  # an allowed host of the embedded default
    headers = {"Authorization": f"Bearer {token}", "x-gw-ims-org-id": BENCH_ORG,
               "x-sandbox-name": sandbox.name, "x-api-key": "bench"}
    with_event, without = [], []
    for n in range(options["requests"] + 50):
        body = {"identity": {"namespace": "Email",
                             "id": f"bench{rng.randrange(options['profiles'])}@example.com"}}
        if n % 2:
            body["event"] = {"eventType": rng.choice(EVENT_TYPES)}
        started = time.perf_counter()
        response = client.post(PATH, body, content_type="application/json", headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"edge request failed: {response.status_code} "
                               f"{response.content[:300]!r}")
        if n >= 50:  # the first requests warm caches and connections
            (with_event if n % 2 else without).append(elapsed)
    everything = with_event + without
    result = {"database": connections["default"].vendor, "definitions": options["definitions"],
              "requests": len(everything),
              "p50_ms": round(_percentile(everything, 50), 2),
              "p95_ms": round(_percentile(everything, 95), 2),
              "p99_ms": round(_percentile(everything, 99), 2),
              "p99_with_event_ms": round(_percentile(with_event, 99), 2),
              "p99_lookup_only_ms": round(_percentile(without, 99), 2),
              "mean_ms": round(statistics.fmean(everything), 2)}
    stdout.write(
        f"Edge benchmark on {result['database']}: {result['requests']:,} requests, "
        f"{options['definitions']} edge definitions, {options['profiles']:,} profiles\n"
        f"  p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms "
        f"(p99 with an event {result['p99_with_event_ms']} ms, "
        f"look-up only {result['p99_lookup_only_ms']} ms)")
    return result
