"""Membership changes delivered per second to a local webhook receiver, end to end.

What is timed: `membership_apply` (streaming source) records the changes in transactions of
`--per-transaction` profiles; after each commit the destinations consumer writes the deliveries
and the flush task (eager, in-process, as in the embedded default without background threads)
POSTs them as signed batches of `SIFT_DELIVERY_BATCH_SIZE` to an HTTP server on loopback that
answers 200. The clock stops when the receiver has counted every change. The figures include
the membership writes themselves; `membership_only_per_second` times the same writes with the
activation removed, so the difference is the cost of delivery.

A throwaway organization is created in the configured database and deleted afterwards. Run:

    python manage.py benchmark deliveries [--changes 2000] [--per-transaction 100]
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.conf import settings
from django.db import connection
from django.utils import timezone


def add_arguments(parser) -> None:
    parser.add_argument("--changes", type=int, default=2000)
    parser.add_argument("--per-transaction", type=int, default=100,
                        help="profiles per membership_apply call (one transaction)")


class _Counter:
    def __init__(self) -> None:
        self.changes = 0
        self.requests = 0
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.expected = 0


def _receiver(counter: _Counter) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with counter.lock:
                counter.requests += 1
                counter.changes += len(json.loads(body).get("changes", []))
                if counter.changes >= counter.expected:
                    counter.done.set()
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _profiles(count: int):
    from audiences.models import MergePolicy, Profile

    policy = MergePolicy.objects.get(is_default=True)
    now = timezone.now()
    rows = [Profile(merge_policy=policy, entity_id=n + 1, attributes={"n": n},
                    identity_map={"Email": [{"id": f"b{n}@example.com", "primary": True}]},
                    primary_namespace="Email", primary_id=f"b{n}@example.com", updated_at=now)
            for n in range(count)]
    return [p.pk for p in Profile.objects.bulk_create(rows, batch_size=1000)]


def _apply_all(definition, profile_ids: list[int], per_transaction: int, qualifies: bool) -> float:
    from audiences.services.memberships import membership_apply

    started = time.perf_counter()
    for start in range(0, len(profile_ids), per_transaction):
        chunk = profile_ids[start:start + per_transaction]
        membership_apply(definition=definition, results=dict.fromkeys(chunk, qualifies),
                         at=timezone.now(), source="streaming")
    return time.perf_counter() - started


def _measure(count: int, per_transaction: int, stdout) -> dict:
    from audiences.models import MergePolicy, SegmentDefinition
    from audiences.services.destinations import activation_set, destination_create

    counter = _Counter()
    server = _receiver(counter)
    try:
        now = timezone.now()
        profile_ids = _profiles(count)
        policy = MergePolicy.objects.get(is_default=True)
        plain = SegmentDefinition.objects.create(name="bench plain", merge_policy=policy,
                                                 created_at=now, updated_at=now)
        baseline = _apply_all(plain, profile_ids, per_transaction, True)

        definition = SegmentDefinition.objects.create(
            name="bench activated", merge_policy=policy, created_at=now, updated_at=now)
        destination = destination_create(
            name="bench receiver", kind="webhook",
            url=f"http://127.0.0.1:{server.server_address[1]}/", user=None, now=now)
        activation_set(destination=destination, definition=definition, namespace="Email",
                       attributes=["n"], user=None, now=now)
        counter.expected = count
        started = time.perf_counter()
        _apply_all(definition, profile_ids, per_transaction, True)
        if not counter.done.wait(timeout=max(60.0, count / 50)):
            stdout.write(f"only {counter.changes} of {count} changes arrived\n")
        elapsed = time.perf_counter() - started
    finally:
        server.shutdown()
        server.server_close()
    return {"database": connection.vendor, "changes": count, "delivered": counter.changes,
            "requests": counter.requests, "seconds": round(elapsed, 3),
            "changes_per_second": round(counter.changes / elapsed, 1),
            "membership_only_per_second": round(count / baseline, 1)}


def run(options, stdout) -> dict:
    from audiences.models import SegmentDefinition
    from portal.models import Organization
    from portal.scope import sandbox_scope
    from portal.services import organization_create

    # Inline delivery (no background thread) so the clock sees every POST finish.
    settings.SIFT_INPROCESS_BACKGROUND = False
    org, _ = organization_create(ims_org_id=f"BENCH{uuid.uuid4().hex[:10]}@AdobeOrg",
                                 name="deliveries benchmark")
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)  # one line per task
    try:
        with sandbox_scope(org.sandboxes.get()):
            try:
                result = _measure(options["changes"], options["per_transaction"], stdout)
            finally:
                SegmentDefinition.objects.all().delete()  # protects its merge policy
    finally:
        Organization.objects.filter(pk=org.pk).delete()
    stdout.write(
        f"{result['database']}: {result['delivered']}/{result['changes']} changes in "
        f"{result['requests']} requests, {result['seconds']} s -> "
        f"{result['changes_per_second']} changes/s delivered "
        f"(membership writes alone: {result['membership_only_per_second']} changes/s)\n")
    return result
