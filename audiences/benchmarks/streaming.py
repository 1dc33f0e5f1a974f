"""Streaming segmentation: sustained events/s and the time from an event's acceptance to its
membership change being visible, through the real ingestion path.

    python manage.py benchmark streaming [--profiles 2000] [--events 6000] [--rate 1500]
                                         [--definitions 100] [--concurrency 1]

In the embedded default (no broker) evaluation runs in-process right after each ingest commits.
With `CELERY_BROKER_URL` set, the benchmark starts one Celery worker on the `streaming` queue
(`--concurrency` processes) and measures across it. Latency is measured per membership change:
the instant a poller first sees the change row minus the instant the request that triggered it
started (the last request for that profile sent before the evaluation instant recorded in the
change), so it includes ingestion, queueing and evaluation.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.db import connections

from audiences.benchmarks._setup import (
    COUNTRIES,
    TIERS,
    datasets,
    fresh_sandbox,
    ingest_in_chunks,
    people_records,
)
from audiences.models import MembershipChange, Profile
from portal.scope import sandbox_scope

EVENT_TYPES = [f"bench.type{n}" for n in range(20)]
WINDOW = "WHEN(<= 2 hours before now)"


def add_arguments(parser) -> None:
    parser.add_argument("--profiles", type=int, default=2000)
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--rate", type=float, default=1500.0, help="target events per second")
    parser.add_argument("--definitions", type=int, default=100)
    parser.add_argument("--request-ms", type=int, default=50,
                        help="one ingestion request every this many ms (default 50)")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="worker processes when a broker is configured (default 1)")


def definitions_mix(count: int) -> list[tuple[str, str]]:
    """The four eligible query types of the streaming guide, in equal parts."""
    mix = []
    for n in range(count):
        kind = n % 4
        first, second = EVENT_TYPES[n % len(EVENT_TYPES)], EVENT_TYPES[(n + 7) % len(EVENT_TYPES)]
        event = f'CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "{first}") {WINDOW}])'
        if kind == 0:
            mix.append(("single event", event))
        elif kind == 1:
            mix.append(("profile only", f'loyalty.tier = "{TIERS[n % len(TIERS)]}" and '
                                        f"loyalty.points >= {(n * 37) % 4000}"))
        elif kind == 2:
            mix.append(("event + profile",
                        f'homeAddress.countryISO = "{COUNTRIES[n % len(COUNTRIES)]}" and {event}'))
        else:
            mix.append(("multiple events",
                        f'CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "{first}") {WINDOW}, '
                        f'C1: WHAT(eventType = "{second}") {WINDOW}])'))
    return mix


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


class Poller(threading.Thread):
    """Sees membership changes as they become visible, on its own database connection."""

    def __init__(self, sandbox_id: int, sent: dict[int, list[float]]) -> None:
        super().__init__(daemon=True)
        self.sandbox_id = sandbox_id
        self.sent = sent  # profile id -> epoch seconds its requests started, in order
        self.latencies: list[float] = []
        self.last_seen = time.time()
        self.stop = threading.Event()
        self.last_pk = (MembershipChange.objects.unscoped().order_by("-pk")
                        .values_list("pk", flat=True).first() or 0)

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                rows = list(MembershipChange.objects.unscoped()
                            .filter(sandbox_id=self.sandbox_id, pk__gt=self.last_pk)
                            .order_by("pk").values_list("pk", "at", "profile_id"))
                seen = time.time()
                for pk, at, profile_id in rows:
                    evaluated = at.timestamp()
                    starts = [t for t in self.sent.get(profile_id, ()) if t <= evaluated + 1e-3]
                    if starts:
                        self.latencies.append(seen - starts[-1])
                    self.last_pk = pk
                if rows:
                    self.last_seen = seen
                time.sleep(0.005)
        finally:
            connections.close_all()


def _start_worker(concurrency: int) -> subprocess.Popen:
    root = Path(settings.BASE_DIR)
    log = open(root / "var" / "bench-streaming-worker.log", "w")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q", "streaming",
         "--concurrency", str(concurrency), "--loglevel=WARNING", "--without-gossip",
         "--without-mingle", "-n", f"bench-{os.getpid()}@%h"],
        cwd=root, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)


def run(options, stdout) -> dict:
    from audiences.services.definitions import definition_create
    from audiences.services.ingest import ingest_records

    rng = random.Random(5)
    eager = settings.CELERY_TASK_ALWAYS_EAGER
    vendor = connections["default"].vendor
    mode = "embedded (in-process)" if eager else f"a Celery worker via {settings.CELERY_BROKER_URL}"
    stdout.write(f"Streaming benchmark on {vendor}, {mode}")
    sandbox = fresh_sandbox("bench-streaming")
    people_ds, events_ds = datasets(sandbox)
    setup_now = datetime.now(UTC)
    with sandbox_scope(sandbox):
        ingest_in_chunks(people_ds, people_records(options["profiles"], now=setup_now),
                         now=setup_now)
        emails = [f"bench{n}@example.com" for n in range(options["profiles"])]
        profile_of = dict(Profile.objects.filter(merge_policy__is_default=True)
                          .values_list("primary_id", "pk"))
        for n, (kind, expression) in enumerate(definitions_mix(options["definitions"])):
            definition_create(name=f"Bench {n:03d} {kind}", expression=expression,
                              requested={"batch": True, "streaming": True}, user=None,
                              now=setup_now)
    worker = None if eager else _start_worker(options["concurrency"])
    if worker is not None:
        time.sleep(3)  # let it connect before the clock starts
    sent_at: dict[int, list[float]] = defaultdict(list)
    poller = Poller(sandbox.pk, sent_at)
    poller.start()
    per_request = max(1, round(options["rate"] * options["request_ms"] / 1000))
    sent, accepted = 0, 0
    started, started_epoch = time.perf_counter(), time.time()
    next_tick = started
    with sandbox_scope(sandbox):
        while sent < options["events"]:
            now = datetime.now(UTC)
            stamp = now.isoformat().replace("+00:00", "Z")
            people = [rng.choice(emails) for _ in range(min(per_request, options["events"] - sent))]
            for email in people:
                sent_at[profile_of[email]].append(now.timestamp())
            records = [{"_id": f"bench-{sent + i}-{rng.getrandbits(40):x}", "timestamp": stamp,
                        "eventType": rng.choice(EVENT_TYPES),
                        "identityMap": {"Email": [{"id": email, "primary": True}]}}
                       for i, email in enumerate(people)]
            accepted += ingest_records(dataset=events_ds, records=records, now=now,
                                       source="streaming").accepted
            sent += len(records)
            next_tick += options["request_ms"] / 1000
            time.sleep(max(0.0, next_tick - time.perf_counter()))
    sending = time.perf_counter() - started
    # Drain: wait until no new change has appeared for two seconds (bounded).
    deadline = time.time() + 120
    while time.time() < deadline and time.time() - poller.last_seen < 2.0:
        time.sleep(0.1)
    drained = poller.last_seen - started_epoch
    poller.stop.set()
    poller.join(timeout=10)
    if worker is not None:
        worker.terminate()
        worker.wait(timeout=30)
    elapsed = max(sending, drained)
    latencies_ms = [v * 1000 for v in poller.latencies]
    result = {
        "database": vendor, "mode": "embedded" if eager else "worker",
        "definitions": options["definitions"], "profiles": options["profiles"],
        "events": sent, "accepted": accepted, "target_rate": options["rate"],
        "sustained_events_per_s": round(sent / elapsed, 1),
        "transitions": len(latencies_ms),
        "p50_ms": round(_percentile(latencies_ms, 50), 1),
        "p95_ms": round(_percentile(latencies_ms, 95), 1),
        "p99_ms": round(_percentile(latencies_ms, 99), 1),
        "mean_ms": round(statistics.fmean(latencies_ms), 1) if latencies_ms else None,
    }
    stdout.write(
        f"{sent:,} events ({accepted:,} accepted) at a target of {options['rate']:g}/s into "
        f"{options['definitions']} streaming definitions over {options['profiles']:,} profiles\n"
        f"  sustained: {result['sustained_events_per_s']:,} events/s "
        f"(sending {sending:.1f} s, all changes visible after {elapsed:.1f} s)\n"
        f"  {result['transitions']:,} membership changes; acceptance → visible: "
        f"p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms")
    return result
