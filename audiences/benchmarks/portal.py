"""Server time of the Audiences page with thousands of audiences (target: <= 200 ms).

Builds a throw-away sandbox with `--audiences` definitions (tags, counters, mixed update
frequencies and origins), signs a marketer in through Django's test client and times the full
request/response of the browse page in its common shapes: the default view, a sort, the
Update-frequency filter, a tag filter, a name search, a deep page and an htmx partial. Run:

    python manage.py benchmark portal [--audiences 5000] [--repeat 7]
"""

from __future__ import annotations

import statistics
import time

from django.test import Client
from django.utils import timezone

from audiences.benchmarks._setup import BENCH_ORG, fresh_sandbox
from portal.scope import sandbox_scope
from portal.services import user_create
from portal.tenancy import SESSION_KEY

SANDBOX = "portal-bench"
TAGS = [f"tag-{i:02d}" for i in range(30)]


def add_arguments(parser) -> None:
    parser.add_argument("--audiences", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7)


def _seed(sandbox, n: int) -> None:
    """`n` definitions written in bulk (the API path would take minutes for 5,000)."""
    from audiences.models import MergePolicy, SegmentDefinition, Tag

    Definition = SegmentDefinition
    origins = [Definition.Origin.SEGMENTATION] * 8 + [Definition.Origin.CUSTOM_UPLOAD,
                                                      Definition.Origin.COMPOSITION]
    with sandbox_scope(sandbox):
        policy = MergePolicy.objects.get(is_default=True)
        tags = Tag.objects.bulk_create([Tag(name=t) for t in TAGS])
        now = timezone.now()
        rows = []
        for i in range(n):
            count = (i * 7919) % 250_000
            rows.append(Definition(
                name=f"Audience {i:05d}", expression='homeAddress.countryISO = "US"',
                merge_policy=policy, origin=origins[i % len(origins)],
                evaluation_batch=i % 5 < 3, evaluation_continuous=i % 5 == 3,
                evaluation_synchronous=i % 5 == 4, qualified_count=count,
                realized_count=count // 10, existing_count=count - count // 10,
                exited_count=count // 20, created_at=now - timezone.timedelta(minutes=i),
                updated_at=now - timezone.timedelta(minutes=i // 2)))
        Definition.objects.bulk_create(rows, batch_size=1000)
        # Two tags per audience.
        links = [Definition.tags.through(segmentdefinition_id=d.pk, tag_id=tags[k].pk)
                 for j, d in enumerate(rows) for k in (j % 30, (j + 7) % 30)]
        Definition.tags.through.objects.bulk_create(links, batch_size=2000)


def _client(sandbox) -> Client:
    user, _ = user_create(username="portal-bench", ims_org_id=BENCH_ORG, role="marketer")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    session = client.session
    session[SESSION_KEY] = str(sandbox.sandbox_id)
    session.save()
    return client


def _forget_previous_run() -> None:
    """Definitions protect their merge policy, so a previous run's go before its sandbox."""
    from audiences.models import SegmentDefinition

    SegmentDefinition.objects.unscoped().filter(sandbox__organization__ims_org_id=BENCH_ORG,
                                                sandbox__name=SANDBOX).delete()


def run(options, stdout) -> dict:
    n, repeat = options["audiences"], options["repeat"]
    _forget_previous_run()
    sandbox = fresh_sandbox(SANDBOX)
    started = time.perf_counter()
    _seed(sandbox, n)
    stdout.write(f"seeded {n} audiences in {time.perf_counter() - started:.1f} s")
    from audiences.models import Tag

    with sandbox_scope(sandbox):
        tag = Tag.objects.get(name="tag-03").pk
    client = _client(sandbox)
    shapes = {
        "default view": ({}, {}),
        "sort by profile count desc": ({"sort": "-count"}, {}),
        "update frequency = streaming": ({"frequency": "streaming"}, {}),
        "has any tag": ({"tags_any": tag}, {}),
        "search by name": ({"q": "0042"}, {}),
        "page 60 (rows 2951-3000)": ({"page": 60}, {}),
        "htmx partial, filtered + sorted": ({"frequency": ["batch", "edge"], "sort": "-updated"},
                                            {"HX-Request": "true"}),
    }
    results = {}
    for label, (params, headers) in shapes.items():
        timings = []
        for _ in range(repeat + 1):
            t0 = time.perf_counter()
            response = client.get("/", params, headers=headers)
            timings.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, response.status_code
        median = statistics.median(timings[1:])  # the first request warms caches
        results[label] = round(median, 1)
        stdout.write(f"{label:36s} median {median:7.1f} ms  max {max(timings[1:]):7.1f} ms")
    worst = max(results.values())
    stdout.write(f"worst median {worst:.1f} ms for {n} audiences "
                 f"({'within' if worst <= 200 else 'OVER'} the 200 ms target)")
    return {"audiences": n, "median_ms": results, "worst_median_ms": worst}
