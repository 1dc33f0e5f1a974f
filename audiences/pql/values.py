"""Values, coercion and comparison: the semantic core both evaluators must mirror.

- Boolean position: null -> false, a list -> non-empty, a defined boolean -> itself, any other
  defined value -> true (pql.md §1).
- `=` coerces a string literal to the other side's boolean or number when it parses
  (`isHomePage = "true"`); otherwise values of different types are unequal.
- Comparisons are null-strict: a null operand makes `=`, `!=`, `<`, ... false.
- A list operand (a path through an array) makes a comparison existential: true if any element
  satisfies it. Two lists compare for `=`/`!=` as multisets.
- Ordering compares numbers with numbers, strings with strings (lexicographically), and
  timestamps with timestamps (an ISO string facing a timestamp is read as one).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from audiences.pql.timeutil import to_datetime


class Interval(tuple):
    """A time reference [start, end): `date(2024, 1, 31)`, `today`, `last month`."""

    __slots__ = ()

    def __new__(cls, start: datetime, end: datetime):
        return super().__new__(cls, (start, end))

    @property
    def start(self) -> datetime:
        return self[0]

    @property
    def end(self) -> datetime:
        return self[1]


def truthy(value) -> bool:
    if value is None:
        return False
    if value is True or value is False:
        return value
    if isinstance(value, list | tuple) and not isinstance(value, Interval):
        return len(value) > 0
    return True


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _hashable(value):
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    return value


def scalar_eq(a, b) -> bool:
    """Equality of two non-null, non-list values with PQL's coercion."""
    if a is b:
        return True
    ta, tb = type(a), type(b)
    if ta is tb and ta is not Interval:
        return a == b
    if isinstance(a, bool) or isinstance(b, bool):
        if isinstance(a, bool) and isinstance(b, str):
            return b.lower() in ("true", "false") and a == (b.lower() == "true")
        if isinstance(b, bool) and isinstance(a, str):
            return a.lower() in ("true", "false") and b == (a.lower() == "true")
        return False
    if is_number(a) and is_number(b):
        return a == b
    if is_number(a) and isinstance(b, str):
        return _as_number(b) == a
    if is_number(b) and isinstance(a, str):
        return _as_number(a) == b
    if isinstance(a, Interval) or isinstance(b, Interval):
        interval, other = (a, b) if isinstance(a, Interval) else (b, a)
        if isinstance(other, Interval):
            return tuple(interval) == tuple(other)
        moment = to_datetime(other) if isinstance(other, str | datetime) else None
        return moment is not None and interval.start <= moment < interval.end
    if isinstance(a, datetime) or isinstance(b, datetime):
        return to_datetime(a) == to_datetime(b) if isinstance(a, str | datetime) and isinstance(
            b, str | datetime) else False
    if isinstance(a, dict) and isinstance(b, dict):
        return a == b
    return False


def _as_number(text: str):
    try:
        value = float(text)
    except (ValueError, OverflowError):
        return None
    return value


def _order_key(a, b):
    """Both operands in a comparable form, or None when they cannot be ordered."""
    if is_number(a) and is_number(b):
        return a, b
    if isinstance(a, str) and isinstance(b, str):
        return a, b
    if isinstance(a, Interval):
        a = a.start
    if isinstance(b, Interval):
        b = b.start
    if isinstance(a, datetime) or isinstance(b, datetime):
        da = to_datetime(a) if isinstance(a, str | datetime) else None
        db = to_datetime(b) if isinstance(b, str | datetime) else None
        if da is not None and db is not None:
            return da, db
    if is_number(a) and isinstance(b, str):
        nb = _as_number(b)
        return (a, nb) if nb is not None else None
    if is_number(b) and isinstance(a, str):
        na = _as_number(a)
        return (na, b) if na is not None else None
    return None


def scalar_cmp(op: str, a, b) -> bool:
    if op == "=":
        return scalar_eq(a, b)
    if op == "!=":
        return not scalar_eq(a, b)
    pair = _order_key(a, b)
    if pair is None:
        return False
    x, y = pair
    if op == "<":
        return x < y
    if op == "<=":
        return x <= y
    if op == ">":
        return x > y
    return x >= y


def _is_list(value) -> bool:
    return isinstance(value, list | tuple) and not isinstance(value, Interval)


def compare(op: str, a, b) -> bool:
    if a is None or b is None:
        return False
    a_list, b_list = _is_list(a), _is_list(b)
    if a_list and b_list:
        if op in ("=", "!="):
            same = Counter(map(_hashable, a)) == Counter(map(_hashable, b))
            return same if op == "=" else not same
        return False
    if a_list:
        return any(x is not None and scalar_cmp(op, x, b) for x in a)
    if b_list:
        return any(y is not None and scalar_cmp(op, a, y) for y in b)
    return scalar_cmp(op, a, b)


def member(value, collection) -> bool | None:
    """`value in collection`; None when either side is null."""
    if value is None or collection is None:
        return None
    items = collection if _is_list(collection) else [collection]
    if _is_list(value):
        return any(member(v, items) for v in value if v is not None)
    return any(x is not None and scalar_eq(value, x) for x in items)


def as_list(value) -> list:
    """A receiver used as an array: null -> [], a single value -> [value] (pql.md A7)."""
    if value is None:
        return []
    if _is_list(value):
        return list(value)
    return [value]


def arithmetic(op: str, a, b):
    if a is None or b is None:
        return None
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b
    if not (is_number(a) and is_number(b)):
        return None
    try:
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return None if b == 0 else a / b
        if op == "%":
            return None if b == 0 else a % b
    except (OverflowError, ValueError):
        return None
    return None


def sortable(values: list) -> list:
    """Values ordered by PQL's ordering, dropping what cannot be compared with the rest."""
    numbers = [v for v in values if is_number(v)]
    if numbers and len(numbers) == len(values):
        return sorted(numbers)
    moments = [to_datetime(v) for v in values if isinstance(v, str | datetime)]
    if moments and all(m is not None for m in moments) and len(moments) == len(values):
        return [v for _, v in sorted(zip(moments, values, strict=True), key=lambda p: p[0])]
    strings = [v for v in values if isinstance(v, str)]
    if strings and len(strings) == len(values):
        return sorted(strings)
    return sorted(numbers) if numbers else []
