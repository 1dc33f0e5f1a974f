"""Batch segmentation: one segment job over N profiles x M events x K definitions.

    python manage.py benchmark batch --profiles 100000 --events-per-profile 20 --definitions 50

Measured in the same run, on the database the settings point at:
1. data generation (INSERT ... SELECT over a generated series, so it scales like COPY);
2. the job (`segment_job_create` + `segment_job_run(inline=True)`: SQL, Python residual,
   set-wise membership writes) -> job time and profiles x definitions per second;
3. the compiled SELECTs alone vs hand-written SQL for the same definitions (same answers are
   checked) -> the "vs hand-written" ratio;
4. the Python evaluator profile by profile on the first `--python-sample` profiles, scaled
   linearly to N (running it over a million profiles would take hours) -> the "vs Python" ratio.

Every run creates a fresh organization `BENCH<time>@AdobeOrg`; point DATABASE_URL at a scratch
database.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

COUNTRIES = ["US", "CA", "FR", "DE", "JP"]
NAMES = ["John", "Joanna", "Mary", "Ann", "Peter", "Zoe"]
TIERS = ["gold", "silver", "bronze", "platinum"]
TYPES = ["web.webpagedetails.pageViews", "commerce.productViews", "commerce.productListAdds",
         "commerce.checkouts", "directMarketing.emailOpened", "directMarketing.emailClicked"]
WINDOW_MINUTES = 60 * 24 * 60  # events spread over the last 60 days


def add_arguments(parser) -> None:
    parser.add_argument("--profiles", type=int, default=10_000)
    parser.add_argument("--events-per-profile", type=int, default=20)
    parser.add_argument("--definitions", type=int, default=50)
    parser.add_argument("--python-sample", type=int, default=2000,
                        help="profiles the Python evaluator runs over (scaled to N)")


# --- data --------------------------------------------------------------------------------------


def _case(expr: str, values: list[str]) -> str:
    whens = " ".join(f"WHEN {i} THEN '{v}'" for i, v in enumerate(values))
    return f"(CASE {expr} {whens} END)"


def _series(count: int) -> tuple[str, str]:
    """(WITH prefix, FROM item) producing n = 0..count-1 on either database."""
    if connection.vendor == "postgresql":
        return "", f"generate_series(0, {int(count) - 1}) AS s(n)"
    return (f"WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s "
            f"WHERE n < {int(count) - 1}) "), "s"


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def generate(*, sandbox, policy, dataset, profiles: int, events_per_profile: int,
             now: datetime) -> None:
    """Identities, merged profiles (pdg: entity = identity) and events, generated in SQL."""
    from audiences.models import Event, Identity, Profile

    pg = connection.vendor == "postgresql"
    ts = now.replace(tzinfo=None).isoformat(" ")
    with_, source = _series(profiles)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_table(Identity)} (sandbox_id, namespace, value, first_seen, "
            f"last_seen) {with_}SELECT %s, 'Email', 'b' || n || '@bench.io', %s, %s FROM "
            f"{source}", [sandbox.pk, ts, ts])
        cursor.execute(f"UPDATE {_table(Identity)} SET cluster_id = id WHERE sandbox_id = %s",
                       [sandbox.pk])
        n = "CAST(substr(value, 2, instr(value, '@') - 2) AS INTEGER)" if not pg else \
            "CAST(split_part(substr(value, 2), '@', 1) AS INTEGER)"
        obj = "jsonb_build_object" if pg else "json_object"
        vip = "to_jsonb(n %% 7 = 0)" if pg else \
            "json(CASE WHEN n %% 7 = 0 THEN 'true' ELSE 'false' END)"
        attributes = (
            f"{obj}('homeAddress', {obj}('countryISO', {_case('n %% 5', COUNTRIES)}), "
            f"'person', {obj}('age', 18 + (n * 7) %% 70, 'name', {obj}('firstName', "
            f"{_case('n %% 6', NAMES)})), 'loyalty', {obj}('tier', "
            f"{_case('(n * 3) %% 4', TIERS)}, 'points', (n * 7919) %% 10000), 'vip', {vip})")
        array = "jsonb_build_array" if pg else "json_array"
        primary = "true" if pg else "json('true')"
        identity_map = f"{obj}('Email', {array}({obj}('id', value, 'primary', {primary})))"
        cursor.execute(
            f"INSERT INTO {_table(Profile)} (sandbox_id, merge_policy_id, entity_id, attributes,"
            f" identity_map, primary_namespace, primary_id, identity_count, excluded, "
            f"updated_at) SELECT sandbox_id, %s, id, {attributes}, {identity_map}, 'Email', "
            f"value, 1, %s, %s FROM (SELECT id, sandbox_id, value, {n} AS n FROM "
            f"{_table(Identity)} WHERE sandbox_id = %s) AS i",
            [policy.pk.hex if not pg else str(policy.pk), False, ts, sandbox.pk])
        _events(cursor, sandbox=sandbox, dataset=dataset, per_profile=events_per_profile,
                ts=ts, pg=pg, table=_table(Event), identities=_table(Identity))


def _events(cursor, *, sandbox, dataset, per_profile: int, ts: str, pg: bool, table: str,
            identities: str) -> None:
    kind = _case("((i.id * 7919 + k * 104729 + k * k * 31) %% 9973) %% 6", TYPES)
    minutes = f"((i.id * 97 + k * 7919) %% {WINDOW_MINUTES})"
    price = "((i.id * 13 + k * 29) %% 500)"
    if pg:
        moment = f"(%s::timestamptz - make_interval(mins => {minutes}::int))"
        iso = f"to_char({moment} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00:00\"')"
        series = f"generate_series(0, {int(per_profile) - 1}) AS ks(k)"
        payload = (f"jsonb_build_object('_id', 'e' || i.id || '-' || k, 'eventType', {kind}, "
                   f"'timestamp', {iso}, 'commerce', jsonb_build_object('order', "
                   f"jsonb_build_object('priceTotal', {price})))")
        prefix = ""
        params = [ts, ts]
    else:
        moment = f"strftime('%%Y-%%m-%%d %%H:%%M:%%S', %s, '-' || {minutes} || ' minutes')"
        iso = f"strftime('%%Y-%%m-%%dT%%H:%%M:%%S+00:00', %s, '-' || {minutes} || ' minutes')"
        prefix = (f"WITH RECURSIVE ks(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM ks WHERE "
                  f"k < {int(per_profile) - 1}) ")
        series = "ks"
        payload = (f"json_object('_id', 'e' || i.id || '-' || k, 'eventType', {kind}, "
                   f"'timestamp', {iso}, 'commerce', json_object('order', "
                   f"json_object('priceTotal', {price})))")
        params = [ts, ts]
    cursor.execute(
        f"INSERT INTO {table} (sandbox_id, dataset_id, event_id, identity_id, cluster_id, "
        f"timestamp, event_type, payload, ingested_at) {prefix}SELECT i.sandbox_id, %s, "
        f"'e' || i.id || '-' || k, i.id, i.id, {moment}, {kind}, {payload}, %s "
        f"FROM {identities} i CROSS JOIN {series} WHERE i.sandbox_id = %s",
        [dataset.pk, *params[:1], *params[1:], ts, sandbox.pk])


# --- definitions and their hand-written SQL --------------------------------------------------


def _templates(i: int, now: datetime) -> tuple[str, str, list]:
    """Definition i: (PQL, hand-written SQL selecting the profile ids, params). `{P}` is the
    profile table alias, `{E}` the events table; `%(policy)s` the policy id."""
    pg = connection.vendor == "postgresql"

    def attr(*keys, text=True) -> str:
        if pg:
            return f"(p.attributes #>> '{{{','.join(keys)}}}')"
        return f"json_extract(p.attributes, '$.{'.'.join(keys)}')"

    def num(*keys) -> str:
        return f"({attr(*keys)})::int" if pg else attr(*keys)

    t = TYPES[i % len(TYPES)]
    u = TYPES[(i + 3) % len(TYPES)]
    kind = i % 9
    days = 3 + i % 20
    ev = "FROM {E} e WHERE e.cluster_id = p.entity_id"
    if kind == 0:
        c = COUNTRIES[i % 5]
        return f'homeAddress.countryISO = "{c}"', f"{attr('homeAddress', 'countryISO')} = %s", [c]
    if kind == 1:
        a = 20 + i % 50
        return f"person.age > {a}", f"{num('person', 'age')} > %s", [a]
    if kind == 2:
        a = 30 + i % 40
        return (f'loyalty.tier in ["gold", "platinum"] and person.age < {a}',
                f"{attr('loyalty', 'tier')} IN ('gold', 'platinum') AND {num('person', 'age')}"
                f" < %s", [a])
    if kind == 3:
        low = now - timedelta(days=days)
        return (f'CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "{t}") '
                f'WHEN(<= {days} days before now)])',
                f"EXISTS (SELECT 1 {ev} AND e.event_type = %s AND e.timestamp >= %s "
                f"AND e.timestamp <= %s)", [t, low, now])
    if kind == 4:
        n = 3 + i % 4
        return (f'xEvent[eventType = "{t}"].count() >= {n}',
                f"(SELECT COUNT(*) {ev} AND e.event_type = %s) >= %s", [t, n])
    if kind == 5:
        return (f'CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "{t}"), '
                f'C1: WHAT(eventType = "{u}")])',
                f"EXISTS (SELECT 1 {ev} AND e.event_type = %s AND EXISTS (SELECT 1 FROM {{E}} f "
                f"WHERE f.cluster_id = e.cluster_id AND f.event_type = %s AND "
                f"f.timestamp > e.timestamp))", [t, u])
    if kind == 6:
        s = 800 + 50 * (i % 10)
        price = ("(e.payload #>> '{commerce,order,priceTotal}')::float8" if pg else
                 "json_extract(e.payload, '$.commerce.order.priceTotal')")
        return (f'xEvent[eventType = "commerce.checkouts"].sum(commerce.order.priceTotal) '
                f'> {s}',
                f"(SELECT COALESCE(SUM({price}), 0) {ev} AND e.event_type = "
                f"'commerce.checkouts') > %s", [s])
    if kind == 7:
        prefix = NAMES[i % 6][:2]
        return (f'person.name.firstName.startsWith("{prefix}")',
                f"substr({attr('person', 'name', 'firstName')}, 1, 2) = %s", [prefix])
    points = 5000 + (i * 37) % 5000
    vip = "(p.attributes #>> '{vip}')::boolean" if pg else "json_extract(p.attributes, '$.vip')"
    return (f"vip = true or loyalty.points > {points}",
            f"({vip} OR {num('loyalty', 'points')} > %s)", [points])


def _hand_ids(sql: str, params: list, policy) -> set[int]:
    from audiences.models import Event, Profile

    full = (f"SELECT p.id FROM {_table(Profile)} p WHERE p.merge_policy_id = %s AND "
            f"NOT p.excluded AND ({sql.replace('{E}', _table(Event))})")
    policy_id = str(policy.pk) if connection.vendor == "postgresql" else policy.pk.hex
    # Datetimes as Django stores them (SQLite compares text: an offset suffix would shift
    # every boundary).
    params = [connection.ops.adapt_datetimefield_value(p) if isinstance(p, datetime) else p
              for p in params]
    with connection.cursor() as cursor:
        cursor.execute(full, [policy_id, *params])
        return {row[0] for row in cursor.fetchall()}


# --- the run -----------------------------------------------------------------------------------


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def run(options, stdout) -> dict:
    from audiences.models import Dataset, MergePolicy, Profile
    from audiences.pql import parse
    from audiences.services import batch
    from audiences.services.batch_sql import query_evaluate
    from audiences.services.definitions import definition_create
    from audiences.services.evaluation import evaluate_python
    from portal.scope import sandbox_scope
    from portal.services import organization_create

    n, m, k = options["profiles"], options["events_per_profile"], options["definitions"]
    now = timezone.now().replace(microsecond=0)
    org, _ = organization_create(ims_org_id=f"BENCH{int(time.time() * 1000)}@AdobeOrg")
    sandbox = org.sandboxes.get()
    out: dict = {"database": connection.vendor, "profiles": n, "eventsPerProfile": m,
                 "definitions": k}
    with sandbox_scope(sandbox):
        policy = MergePolicy.objects.get(is_default=True)
        dataset = Dataset.objects.create(name="bench events", class_name=Dataset.Class.EVENT)
        with transaction.atomic():
            _, out["generateSeconds"] = _timed(lambda: generate(
                sandbox=sandbox, policy=policy, dataset=dataset, profiles=n,
                events_per_profile=m, now=now))
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        stdout.write(f"generated {n} profiles, {n * m} events in {out['generateSeconds']:.1f}s")
        specs = [_templates(i, now) for i in range(k)]
        for i, (pql, _, _) in enumerate(specs):
            definition_create(name=f"bench {i}", expression=pql, user=None, now=now)
        job = batch.segment_job_create(segment_ids="*", source="api", now=now, enqueue=False)
        job, out["jobSeconds"] = _timed(lambda: batch.segment_job_run(job_id=job.pk, now=now,
                                                                      inline=True))
        out["jobStatus"] = job.status
        out["profilesTimesDefinitionsPerSecond"] = round(n * k / out["jobSeconds"])
        stdout.write(f"job {job.status} in {out['jobSeconds']:.1f}s "
                     f"({out['profilesTimesDefinitionsPerSecond']:,} profile x definition/s)")
        # The daily steady state: the next day's job mostly confirms members (existing).
        later = now + timedelta(days=1)
        again = batch.segment_job_create(segment_ids="*", source="api", now=later,
                                         enqueue=False)
        _, out["nextDayJobSeconds"] = _timed(lambda: batch.segment_job_run(
            job_id=again.pk, now=later, inline=True))
        stdout.write(f"next day's job in {out['nextDayJobSeconds']:.1f}s")
        compiled = hand = 0.0
        mismatches = []
        evaluators = {}
        for pql, sql, params in specs:
            query = parse(pql)
            result, seconds = _timed(lambda q=query: query_evaluate(query=q, merge_policy=policy,
                                                                    now=now))
            compiled += seconds
            evaluators[result.evaluator] = evaluators.get(result.evaluator, 0) + 1
            ids, seconds = _timed(lambda s=sql, p=params: _hand_ids(s, p, policy))
            hand += seconds
            if ids != set(result.profile_ids):
                mismatches.append(pql)
        out.update(compiledSelectSeconds=round(compiled, 2), handWrittenSeconds=round(hand, 2),
                   vsHandWritten=round(compiled / hand, 2) if hand else None,
                   evaluators=evaluators, handWrittenMismatches=mismatches)
        stdout.write(f"compiled SELECTs {compiled:.1f}s vs hand-written {hand:.1f}s "
                     f"(x{out['vsHandWritten']}); evaluators {evaluators}; "
                     f"mismatches {len(mismatches)}")
        sample = list(Profile.objects.filter(merge_policy=policy).order_by("pk")
                      .values_list("pk", flat=True)[:options["python_sample"]])
        python = 0.0
        for pql, _, _ in specs:
            query = parse(pql)
            _, seconds = _timed(lambda q=query: list(evaluate_python(
                query=q, merge_policy=policy, now=now, profile_ids=sample)))
            python += seconds
        scaled = python * n / max(len(sample), 1)
        out.update(pythonSampleProfiles=len(sample), pythonSampleSeconds=round(python, 2),
                   pythonScaledSeconds=round(scaled, 1),
                   vsPython=round(scaled / out["jobSeconds"], 1))
        stdout.write(f"python evaluator: {python:.1f}s for {len(sample)} profiles -> "
                     f"{scaled:.0f}s scaled to {n} (job is x{out['vsPython']} faster)")
    stdout.write(str(out))
    return out
