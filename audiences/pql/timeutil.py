"""Time in PQL: timestamps from data, calendar periods, and the `occurs` relations (pql.md §7).

All arithmetic is UTC. A reference (`today`, `last month`, `date(2024, 1, 31)`) is an interval
[start, end); an instant (`now`, an event timestamp) is the zero-width interval [t, t].
Units up to a week have fixed lengths (1 week = 7 days); month and longer use calendar
arithmetic, clamping the day (31 Jan + 1 month = 29 Feb in a leap year).
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

FIXED = {
    "millisecond": timedelta(milliseconds=1), "second": timedelta(seconds=1),
    "minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1),
    "week": timedelta(weeks=1),
}
MONTHS = {"month": 1, "year": 12, "decade": 120, "century": 1200, "millennium": 12000}
MIN_TS = datetime(1, 1, 2, tzinfo=UTC)
MAX_TS = datetime(9999, 12, 30, tzinfo=UTC)


@lru_cache(maxsize=200_000)
def _parse_iso(text: str) -> datetime | None:
    value = text.strip()
    if not value:
        return None
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(value), datetime.min.time())
        except ValueError:
            return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


parse_text = _parse_iso  # ISO-8601 text -> aware UTC datetime or None (cached)


def to_datetime(value) -> datetime | None:
    """A timestamp from data: ISO-8601 text, an aware/naive datetime, a date, or epoch ms."""
    if type(value) is str:
        return _parse_iso(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, str):
        return _parse_iso(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value / 1000.0, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


def add_months(moment: datetime, months: int) -> datetime:
    total = moment.year * 12 + (moment.month - 1) + months
    year, month = divmod(total, 12)
    if year < 1:
        return MIN_TS
    if year > 9999:
        return MAX_TS
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def shift(moment: datetime, amount: int, unit: str) -> datetime:
    """`moment` moved by `amount` units (negative moves back), saturating at the calendar ends."""
    try:
        if unit in FIXED:
            return moment + FIXED[unit] * amount
        return add_months(moment, MONTHS[unit] * amount)
    except OverflowError:
        return MAX_TS if amount > 0 else MIN_TS


def start_of(moment: datetime, unit: str) -> datetime:
    """The start of the calendar period of `unit` containing `moment` (ISO weeks, Monday)."""
    if unit == "millisecond":
        return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)
    if unit == "second":
        return moment.replace(microsecond=0)
    if unit == "minute":
        return moment.replace(second=0, microsecond=0)
    if unit == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "day":
        return day
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    year = day.year
    if unit == "year":
        return day.replace(month=1, day=1)
    span = {"decade": 10, "century": 100, "millennium": 1000}[unit]
    return day.replace(year=max(1, year - year % span), month=1, day=1)


def period(now: datetime, which: str, unit: str) -> tuple[datetime, datetime]:
    """`this|last|next unit` as [start, end)."""
    start = start_of(now, unit)
    offset = {"this": 0, "last": -1, "next": 1}[which]
    start = shift(start, offset, unit)
    return start, shift(start, 1, unit)


def day_interval(now: datetime, offset_days: int) -> tuple[datetime, datetime]:
    start = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=offset_days)
    return start, start + timedelta(days=1)


def occurs_relative(t: datetime, cmp: str, amount: int, unit: str, direction: str,
                    ref: tuple[datetime, datetime]) -> bool:
    """`t occurs CMP N UNIT before|after|from REF` (pql.md §7.2, compared exactly)."""
    start, end = ref
    if direction == "before":
        if t > start:
            return False
        bound = shift(start, -amount, unit)
        if cmp == "<=":
            return t >= bound
        if cmp == "<":
            return t > bound
        if cmp == ">=":
            return t <= bound
        if cmp == ">":
            return t < bound
        # `= N units before`: the UNIT-sized bucket N buckets back (floor of the difference).
        inside = shift(start, -(amount + 1), unit) < t <= bound
        return inside if cmp == "=" else not inside
    if direction == "after":
        if t < end:
            return False
        bound = shift(end, amount, unit)
        if cmp == "<=":
            return t <= bound
        if cmp == "<":
            return t < bound
        if cmp == ">=":
            return t >= bound
        if cmp == ">":
            return t > bound
        inside = bound <= t < shift(end, amount + 1, unit)
        return inside if cmp == "=" else not inside
    # `from`: two-sided, |t - ref| CMP N units (the UI's "Within ±N").
    low, high = shift(start, -amount, unit), shift(start, amount, unit)
    if cmp == "<=":
        return low <= t <= high
    if cmp == "<":
        return low < t < high
    if cmp == ">=":
        return t <= low or t >= high
    if cmp == ">":
        return t < low or t > high
    inside = low <= t <= high
    return inside if cmp == "=" else not inside


def occurs_on(t: datetime, ref: tuple[datetime, datetime]) -> bool:
    start, end = ref
    if start == end:  # an instant: the same UTC calendar day
        day_start = start.replace(hour=0, minute=0, second=0, microsecond=0)
        return day_start <= t < day_start + timedelta(days=1)
    return start <= t < end


def occurs_directional(t: datetime, direction: str, ref: tuple[datetime, datetime]) -> bool:
    start, end = ref
    if direction == "before":
        return t < start
    if start == end:
        return t > end
    return t >= end


def occurs_between(t: datetime, first: tuple[datetime, datetime],
                   last: tuple[datetime, datetime]) -> bool:
    end = last[1] if last[1] > last[0] else last[1]
    if last[0] == last[1]:
        return first[0] <= t <= end
    return first[0] <= t < end
