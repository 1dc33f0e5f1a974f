"""Time semantics of pql.md §7.2, at boundaries."""

from datetime import UTC, datetime, timedelta

import pytest

from audiences.pql import parse

NOW = datetime(2026, 11, 18, 15, 30, tzinfo=UTC)  # Wednesday


def occurs(clause: str, at: datetime, now: datetime = NOW) -> bool:
    return parse(f"t occurs {clause}").evaluate_strict({"t": at.isoformat()}, [], now=now)


@pytest.mark.parametrize(("clause", "delta", "expected"), [
    ("<= 24 hours before now", timedelta(hours=24), True),
    ("<= 24 hours before now", timedelta(hours=24, seconds=1), False),
    ("< 24 hours before now", timedelta(hours=24), False),
    ("<= 24 hours before now", timedelta(seconds=-1), False),  # in the future
    (">= 3 days before now", timedelta(days=3), True),
    ("> 3 days before now", timedelta(days=3), False),
    ("= 3 hours before now", timedelta(hours=3, minutes=30), True),
    ("= 3 hours before now", timedelta(hours=2, minutes=59), False),
])
def test_relative_windows_compare_exactly(clause, delta, expected):
    assert occurs(clause, NOW - delta) is expected


def test_today_is_the_utc_calendar_day():
    midnight = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
    assert occurs("today", midnight)
    assert not occurs("today", midnight - timedelta(microseconds=1))
    assert occurs("yesterday", midnight - timedelta(seconds=1))


def test_before_today_is_before_midnight():
    midnight = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
    assert occurs("before today", midnight - timedelta(seconds=1))
    assert not occurs("before today", midnight)


def test_calendar_periods_start_on_monday_and_on_the_first():
    monday = datetime(2026, 11, 16, tzinfo=UTC)
    assert occurs("this week", monday)
    assert not occurs("this week", monday - timedelta(seconds=1))
    assert occurs("last week", monday - timedelta(seconds=1))
    assert occurs("last month", datetime(2026, 10, 31, 23, tzinfo=UTC))
    assert not occurs("last month", datetime(2026, 11, 1, tzinfo=UTC))
    assert occurs("this year", datetime(2026, 1, 1, tzinfo=UTC))


def test_the_legacy_worked_example_one_month_before_today():
    # "<= 1 month before today, with today = 28 Aug 2018, is 28 Jul - 27 Aug 2018".
    now = datetime(2018, 8, 28, 10, tzinfo=UTC)
    assert occurs("<= 1 month before today", datetime(2018, 7, 28, tzinfo=UTC), now)
    assert occurs("<= 1 month before today", datetime(2018, 8, 27, 23, tzinfo=UTC), now)
    assert not occurs("<= 1 month before today", datetime(2018, 7, 27, 23, tzinfo=UTC), now)
    assert not occurs("<= 1 month before today", datetime(2018, 8, 28, 1, tzinfo=UTC), now)


def test_between_dates_includes_both_days():
    clause = "between date(2017, 10, 1) and date(2017, 12, 31)"
    assert occurs(clause, datetime(2017, 10, 1, tzinfo=UTC))
    assert occurs(clause, datetime(2017, 12, 31, 23, 59, tzinfo=UTC))
    assert not occurs(clause, datetime(2018, 1, 1, tzinfo=UTC))


def test_month_arithmetic_clamps_the_day():
    now = datetime(2024, 3, 31, 12, tzinfo=UTC)
    assert occurs("<= 1 month before now", datetime(2024, 2, 29, 12, tzinfo=UTC), now)
    assert not occurs("<= 1 month before now", datetime(2024, 2, 29, 11, tzinfo=UTC), now)


def test_timestamps_come_as_iso_text_datetimes_or_epoch_milliseconds():
    query = parse("t occurs <= 1 hours before now")
    for value in (NOW.isoformat(), NOW.strftime("%Y-%m-%dT%H:%M:%SZ"), NOW,
                  int(NOW.timestamp() * 1000)):
        assert query.evaluate_strict({"t": value}, [], now=NOW)


def test_recheck_is_when_the_window_lapses():
    query = parse('CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "commerce.checkouts") '
                  "WHEN(<= 3 hours before now)])")
    checkout = NOW - timedelta(hours=1)
    events = [{"eventType": "commerce.checkouts", "timestamp": checkout.isoformat()},
              {"eventType": "web.pageViews", "timestamp": (NOW - timedelta(hours=2)).isoformat()}]
    lapse = query.recheck_at({}, events, now=NOW)
    # The page view is not a checkout: only the checkout's window matters.
    assert checkout + timedelta(hours=3) == lapse
    assert query.evaluate_strict({}, events, now=lapse)
    assert not query.evaluate_strict({}, events, now=lapse + timedelta(microseconds=1))


def test_recheck_for_today_is_midnight_and_none_without_time():
    today = parse('CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "x") WHEN(today)])')
    assert today.recheck_at({}, [], now=NOW) == datetime(2026, 11, 19, tzinfo=UTC)
    assert parse('a = 1').recheck_at({}, [], now=NOW) is None
