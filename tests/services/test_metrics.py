"""The roll-up against a hand-computed change log."""

from datetime import UTC, datetime, timedelta

from audiences.models import MembershipChange, MetricBucket
from audiences.services.metrics import metrics_rollup, metrics_series
from tests.factories import make_definition, make_profile

DAY0 = datetime(2026, 11, 1, tzinfo=UTC)


def log(definition, profile, old, new, at, source="streaming"):
    MembershipChange.objects.create(definition=definition, profile=profile, old_status=old,
                                    new_status=new, at=at, source=source)


def daily(definition):
    return [(b.start.day, b.total, b.realized, b.exited, b.realized_streaming)
            for b in MetricBucket.objects.filter(definition=definition, granularity="day")]


def test_rollup_matches_a_hand_computed_log(in_acme_prod):
    d = make_definition()
    a, b, c = make_profile(), make_profile(), make_profile()
    # Nov 1: a and b enter by batch; Nov 2: c enters by streaming, a is confirmed (existing)
    # and exits by streaming; Nov 4: b exits by batch.
    log(d, a, "", "realized", DAY0 + timedelta(hours=5), "batch")
    log(d, b, "", "realized", DAY0 + timedelta(hours=5), "batch")
    log(d, c, "", "realized", DAY0 + timedelta(days=1, hours=9))
    log(d, a, "realized", "existing", DAY0 + timedelta(days=1, hours=5), "batch")
    log(d, a, "existing", "exited", DAY0 + timedelta(days=1, hours=13))
    log(d, b, "realized", "exited", DAY0 + timedelta(days=3, hours=5), "batch")
    result = metrics_rollup()
    assert result.changes == 6
    assert daily(d) == [(1, 2, 2, 0, 0), (2, 2, 1, 1, 1), (4, 1, 0, 1, 0)]
    hourly = {(x.start.day, x.start.hour): x.total
              for x in MetricBucket.objects.filter(definition=d, granularity="hour")}
    assert hourly == {(1, 5): 2, (2, 9): 3, (2, 13): 2, (4, 5): 1}


def test_rollup_is_incremental_and_idempotent(in_acme_prod):
    d = make_definition()
    a = make_profile()
    log(d, a, "", "realized", DAY0)
    metrics_rollup()
    assert metrics_rollup().changes == 0
    log(d, a, "realized", "exited", DAY0 + timedelta(days=1))
    assert metrics_rollup().changes == 1
    assert daily(d) == [(1, 1, 1, 0, 1), (2, 0, 0, 1, 0)]


def test_a_late_change_for_an_old_bucket_moves_later_totals(in_acme_prod):
    d = make_definition()
    a, b = make_profile(), make_profile()
    log(d, a, "", "realized", DAY0 + timedelta(days=2))
    metrics_rollup()
    log(d, b, "", "realized", DAY0)  # replayed history arrives after newer data
    metrics_rollup()
    assert daily(d) == [(1, 1, 1, 0, 1), (3, 2, 1, 0, 1)]


def test_series_fills_gaps_with_the_last_total(in_acme_prod):
    d = make_definition()
    a = make_profile()
    log(d, a, "", "realized", DAY0 + timedelta(days=1))
    metrics_rollup()
    series = metrics_series(definition=d, granularity="day", start=DAY0,
                            end=DAY0 + timedelta(days=4))
    assert series.total == [0, 1, 1, 1]
    assert series.realized_streaming == [0, 1, 0, 0]
