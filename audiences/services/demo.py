"""The demo sandbox: data, merge policies, audiences, and thirty days of history.

`demo_build` is idempotent: a sandbox that already holds the demo data is left as it is
(unless `reset`). Every step goes through the product's own services — ingestion, merge
policies, definitions, batch jobs — so the demo shows what Sift does, not a shortcut.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction

from audiences.models import Dataset, MergePolicy, SegmentDefinition
from audiences.services import demo_data
from portal.models import Sandbox
from portal.scope import sandbox_scope

log = logging.getLogger(__name__)

TAG_SEED = "seed guide"
PRECEDENCE_POLICY = "CRM over loyalty"
CHUNK = 5000
HISTORY = "demo history"

Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass(frozen=True)
class Audience:
    key: str
    name: str
    expression: str
    methods: tuple[str, ...]  # requested: ("batch",), ("streaming",), ("edge",)
    tags: tuple[str, ...]
    description: str


CHECKOUT_24H = ('CHAIN(xEvent, timestamp, [C0: WHAT(eventType.equals("commerce.checkouts", '
                'false)) WHEN(<= 24 hours before now)])')

# `{key}` placeholders are replaced by the ids of audiences created earlier in this list.
AUDIENCES: tuple[Audience, ...] = (
    Audience("ca", "California Residents", 'homeAddress.stateProvince = "CA"', ("batch",),
             (TAG_SEED, "geo"), "Home address is in the state of California."),
    Audience("checkouts", "Recent checkouts", CHECKOUT_24H, ("streaming",),
             (TAG_SEED, "commerce", "realtime"),
             "Has at least one checkout in the last 24 hours."),
    Audience("usa", "People in the USA", 'homeAddress.countryISO = "US"', ("batch",),
             (TAG_SEED, "geo"), "Home address is in the United States."),
    Audience("home", "People who are on their homepage",
             "select var1 from xEvent where "
             "var1._experience.analytics.endUser.firstWeb.webPageDetails.isHomePage = true",
             ("batch",), (TAG_SEED, "web"),
             "Viewed the homepage at least once (the guide's Homepage_continuous)."),
    Audience("not_home", "People who are NOT on their homepage",
             "select var1 from xEvent where "
             "var1._experience.analytics.endUser.firstWeb.webPageDetails.isHomePage = false",
             ("batch",), (TAG_SEED, "web"), "Viewed a page other than the homepage."),
    Audience("abandons", "Recent abandons",
             'CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "commerce.abandons") '
             "WHEN(<= 48 hours before now)])", ("batch",), (TAG_SEED, "commerce"),
             "Has at least one abandon event in the last 48 hours."),
    Audience("ca_checkouts", "California residents who checked out today",
             'inSegment("{ca}") and ' + CHECKOUT_24H, ("streaming",),
             (TAG_SEED, "segment of segments", "realtime"),
             "The streaming guide's pattern: a batch profile audience plus a recent event."),
    Audience("abandon_then_buy", "Abandoned recently and checked out",
             'inSegment("{abandons}") and inSegment("{checkouts}")', ("streaming",),
             (TAG_SEED, "segment of segments"),
             "The streaming guide's pattern for two event audiences."),
    Audience("high_value", "High-value customers",
             'xEvent[eventType = "commerce.checkouts"].sum(commerce.order.priceTotal) > 400',
             ("batch",), ("retail", "value"),
             "Spent more than $400 in checkouts over the stored history."),
    Audience("lapsed", "Lapsed buyers",
             'CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "commerce.checkouts") '
             'WHEN(> 14 days before now)]) and not CHAIN(xEvent, timestamp, '
             '[C0: WHAT(eventType = "commerce.checkouts") WHEN(<= 14 days before now)])',
             ("batch",), ("retail", "win-back"),
             "Bought before, but not in the last two weeks."),
    Audience("email_engaged", "Email-engaged in the last day",
             'CHAIN(xEvent, timestamp, [C0: WHAT(eventType.equals('
             '"directMarketing.emailClicked", false)) WHEN(<= 24 hours before now)])',
             ("streaming",), ("email", "realtime"),
             "Clicked a campaign email in the last 24 hours."),
    Audience("cart_abandoners", "Cart abandoners in the last hour",
             'CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "commerce.productListAdds") '
             'WHEN(<= 1 hours before now)]) and not CHAIN(xEvent, timestamp, '
             '[C0: WHAT(eventType = "commerce.checkouts") WHEN(<= 1 hours before now)])',
             ("streaming",), ("retail", "realtime", "win-back"),
             "Added to cart within the hour and has not checked out in that hour."),
    Audience("gold", "Loyalty Gold and Platinum",
             'loyalty.tier in ["gold", "platinum"]', ("edge",), ("loyalty",),
             "Top loyalty tiers, for same-page personalisation."),
    Audience("bronze", "Loyalty Bronze", 'loyalty.tier = "bronze"', ("streaming",),
             ("loyalty",), "Entry loyalty tier."),
    Audience("browsing_now", "Browsing right now",
             'CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "web.webpagedetails.pageViews") '
             "WHEN(<= 30 minutes before now)])", ("edge",), ("web", "realtime"),
             "Viewed a page in the last 30 minutes (edge)."),
    Audience("window_shoppers", "Window shoppers today",
             'CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "commerce.productViews") '
             "WHEN(today) COUNT(3)])", ("streaming",), ("retail", "realtime"),
             "Viewed at least three products today."),
    Audience("frequent", "Frequent visitors",
             'xEvent[eventType = "web.webpagedetails.pageViews" and timestamp occurs '
             "<= 7 days before now].count() >= 3", ("batch",), ("web",),
             "Three or more page views in the last week."),
    Audience("email_optin", "Email subscribers",
             'consents.marketing.email.val = "y"', ("batch",), ("email",),
             "Consented to marketing email."),
    Audience("big_cart_ca", "Californians with a big order this month",
             'homeAddress.stateProvince = "CA" and (select X from xEvent where X.eventType = '
             '"commerce.checkouts" and X.commerce.order.priceTotal >= 200 and X.timestamp occurs '
             "this month)", ("batch",), ("retail", "geo", "value"),
             "California residents with an order of $200 or more this month."),
    Audience("new_arrivals", "Interested in new arrivals",
             "select P from xEvent where P.web.webPageDetails.name = \"new-arrivals\" and "
             "P.timestamp occurs <= 7 days before now", ("batch",), ("web", "retail"),
             "Looked at the new arrivals page in the last week."),
)


@dataclass
class DemoResult:
    built: bool
    profiles: int = 0
    records: int = 0
    rejected: int = 0
    audiences: int = 0
    jobs: int = 0


def _noop(phase: str, done: int, total: int) -> None:
    return None


def demo_exists(*, sandbox: Sandbox) -> bool:
    with sandbox_scope(sandbox):
        return Dataset.objects.filter(name=demo_data.CRM).exists()


def demo_reset(*, sandbox: Sandbox) -> Sandbox:
    """Delete every row of the sandbox by recreating it (same name, org, type, default)."""
    from audiences.services.bootstrap import sandbox_bootstrap, sandbox_purge

    org, name, kind, default = (sandbox.organization, sandbox.name, sandbox.type,
                                sandbox.is_default)
    with transaction.atomic():
        sandbox_purge(sandbox=sandbox)
        fresh = Sandbox.objects.create(organization=org, name=name, title=name.title(),
                                       type=kind, is_default=default)
    sandbox_bootstrap(sandbox=fresh)
    return fresh


def demo_build(*, sandbox: Sandbox, profiles: int, now: datetime, days: int = 30,
               history: bool = True, progress: Progress = _noop) -> DemoResult:
    if demo_exists(sandbox=sandbox):
        return DemoResult(built=False)
    data = demo_data.generate(profiles=profiles, days=days, now=now)
    progress("generate", 1, 1)
    with sandbox_scope(sandbox):
        datasets = _datasets()
        result = DemoResult(built=True, profiles=profiles)
        total = data.count()
        done = 0
        from audiences.services.ingest import ingest_records

        # Profiles first, then events in time order, as a business would have loaded them.
        for name in (demo_data.CRM, demo_data.LOYALTY, demo_data.WEB, demo_data.EMAIL):
            records = data.records[name]
            for start in range(0, len(records), CHUNK):
                chunk = records[start:start + CHUNK]
                outcome = ingest_records(dataset=datasets[name], records=chunk, now=now,
                                         source="import")
                result.rejected += len(outcome.rejected)
                done += len(chunk)
                progress("ingest", done, total)
        result.records = total
        _merge_policies(datasets, now)
        created = _audiences(now)
        result.audiences = len(created)
        if history:
            result.jobs = demo_history(sandbox=sandbox, days=days, now=now, progress=progress)
        else:
            _job(now, name="demo build")  # today's counts at once; history can follow
            from audiences.services.metrics import metrics_rollup

            metrics_rollup()
            result.jobs = 1
    return result


def _datasets() -> dict[str, Dataset]:
    from audiences.services.datasets import dataset_create

    enabled = {"unifiedProfile": ["enabled:true"], "unifiedIdentity": ["enabled:true"]}
    specs = {
        demo_data.CRM: (demo_data.PROFILE_SCHEMA, "Customer records from the CRM."),
        demo_data.LOYALTY: (demo_data.PROFILE_SCHEMA, "Members of the loyalty programme."),
        demo_data.WEB: (demo_data.EVENT_SCHEMA, "Web and app behaviour from the Web SDK."),
        demo_data.EMAIL: (demo_data.EVENT_SCHEMA, "Campaign opens and clicks."),
    }
    return {name: dataset_create(name=name, schema_ref={"id": schema,
                                                        "contentType": "application/vnd.adobe."
                                                        "xed-full+json;version=1"},
                                 description=description, tags=enabled)
            for name, (schema, description) in specs.items()}


def _merge_policies(datasets: dict[str, Dataset], now: datetime) -> None:
    from audiences.services.merge_policies import merge_policy_create

    if MergePolicy.objects.filter(name=PRECEDENCE_POLICY).exists():
        return
    merge_policy_create(
        name=PRECEDENCE_POLICY, identity_graph="pdg", attribute_merge="dataSetPrecedence",
        dataset_order=[datasets[demo_data.CRM].pk, datasets[demo_data.LOYALTY].pk], now=now)


def _audiences(now: datetime) -> dict[str, SegmentDefinition]:
    from audiences.services.definitions import definition_create

    created: dict[str, SegmentDefinition] = {}
    for audience in AUDIENCES:
        expression = audience.expression
        for key, definition in created.items():
            expression = expression.replace("{" + key + "}", str(definition.pk))
        requested = {"batch": True, "streaming": "streaming" in audience.methods,
                     "edge": "edge" in audience.methods}
        created[audience.key] = definition_create(
            name=audience.name, expression=expression, description=audience.description,
            requested=requested, tags=audience.tags, user=None,
            now=now - timedelta(days=31))
    return created


def _job(snapshot: datetime, *, name: str) -> None:
    from audiences.services.batch import segment_job_create, segment_job_run

    job = segment_job_create(segment_ids="*", source="demo", now=snapshot, snapshot_at=snapshot,
                             enqueue=False, snapshot_name=name)
    segment_job_run(job_id=job.pk, now=snapshot, inline=True)


def _forget_memberships() -> None:
    """Start the replay from nobody: a change log must run forward in time, and the memberships
    written at build time ("today") would otherwise be judged against the past."""
    from audiences.models import Membership, MembershipChange, MetricBucket

    with transaction.atomic():
        MetricBucket.objects.all().delete()
        MembershipChange.objects.all().delete()
        Membership.objects.all().delete()
        SegmentDefinition.objects.update(realized_count=0, existing_count=0, exited_count=0,
                                         qualified_count=0)


def demo_history(*, sandbox: Sandbox, days: int = 30, now: datetime,
                 progress: Progress = _noop) -> int:
    """Replay one batch job per past day (at the daily schedule's hour), oldest first, then
    one at `now`, so "Profiles over time" has a month of exact curves. Resumable: days already
    replayed are skipped. Returns how many jobs ran."""
    from audiences.models import SegmentJob
    from audiences.services.metrics import metrics_rollup

    snapshots = [(now - timedelta(days=d)).replace(hour=5, minute=0, second=0, microsecond=0)
                 for d in range(days, 0, -1)]
    snapshots = [s for s in snapshots if s < now]
    with sandbox_scope(sandbox):
        done = set(SegmentJob.objects.filter(source="demo", snapshot_name__startswith=HISTORY)
                   .values_list("snapshot_name", flat=True))
        todo = [s for s in snapshots if f"{HISTORY} {s:%Y-%m-%d}" not in done]
        if not done and todo:
            _forget_memberships()
        for index, snapshot in enumerate(todo):
            _job(snapshot, name=f"{HISTORY} {snapshot:%Y-%m-%d}")
            progress("history", index + 1, len(todo) + 1)
        if todo:
            _job(now, name="demo history caught up")  # back to today's state
        progress("history", len(todo) + 1, len(todo) + 1)
        metrics_rollup()
    return len(todo) + (1 if todo else 0)
