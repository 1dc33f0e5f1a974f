"""The Profile Query Language: parse, print, evaluate, analyse. No Django here.

    from audiences.pql import parse, PQLError
    query = parse('homeAddress.countryISO = "US"')
    query.evaluate(profile, events, now=now, segments=frozenset())  # -> bool
    query.to_pql(); query.references; query.recheck_at(...); query.to_json()

Semantics (shared/pql.md decides most; the rest is decided here, and tested):

1. Null and booleans. A missing path or a type mismatch is null; at a boolean position null is
   false, a list is true when non-empty, any other defined value is true (0 and "" included;
   a defined `false` is false). `not` is two-valued: `not (country = "CA")` is true for a
   profile without a country. The negative forms (`!=`, `notIn`, `doesNotStartWith`,
   `doesNotEndWith`, `doesNotContain`, `notEqualTo`) need both operands non-null, so they are
   not the negation of their positive twins.
2. Coercion. `=`/`!=` compare a string with a boolean or a number by reading the string
   (`isHomePage = "true"`); otherwise values of different types are unequal. Ordering compares
   numbers, strings (lexicographically) and timestamps (ISO text facing a timestamp is parsed).
3. Paths through arrays map and flatten; a comparison with such a list is existential (any
   element). Two lists are equal as multisets. `intersection` of disjoint lists is `[]`.
4. Arithmetic is true division; `x / 0` and `x % 0` are null; a non-number operand is null.
5. Strings: `=` is case-sensitive; `equals`/`startsWith`/... take an optional case flag
   (default case-sensitive); `equals("a", "b", ...)` with several strings means any of them.
   `like` is SQL LIKE over the whole string, case-sensitive. `matches` is an unanchored regex
   search (Java `find()`), case-sensitive unless `(?i)`. `regexGroup` defaults to group 0.
6. Time is UTC. `today` is the UTC calendar day; `this|last|next unit` are calendar periods
   (weeks start on Monday); `date(y, m, d)` is a whole day. `occurs` follows pql.md §7.2:
   `<= N units before now` is the rolling window [now - N, now]; `before T` means before T's
   start; `after T` means from T's end; `between A and B` is inclusive of both calendar days;
   `= N units before T` is the N-th UNIT-sized bucket back; `from T` is two-sided (±N).
   Months and longer use calendar arithmetic (day clamped); weeks and shorter fixed lengths.
7. Events. `xEvent` is the profile's events. In `xEvent[...]`, `.filter(...)`, `.exists(...)`,
   WHAT/WHERE and per-item method arguments, bare names read the current item first, then
   the enclosing items and the profile; `^` climbs one item scope per caret. In a method
   argument the singular of the receiver's name (`orders.sum(order.price)`) is the item.
8. CHAIN. Steps match distinct events in strictly increasing timestamp order. `COUNT(n)` means
   at least n matching events (the step's time is that of the n-th). WHERE is ANDed with
   WHAT. Inferred syntax (pql.md §8.2, flagged): a negated step `C1: !WHAT(...)` (or
   `!C1: WHAT(...)`) means no matching event between its neighbours (or after the previous
   step when it is last); a step label as a time reference, `WHEN(<= 3 days after C0)`,
   measures from that step's event. At most 6 steps.
9. Aggregates: `sum` of nothing is 0; `average`/`min`/`max` of nothing are null; non-numbers
   are skipped by sum/average. `topN` returns the largest first, `bottomN` the smallest.
   `forall` over an empty (or null) array is true.
10. `inSegment("id")` is true when the profile currently belongs to audience `id` (realized or
   existing), as given in `segments`.
11. `count()` of null is 0 and of a single value 1; a single value used as an array is a
   one-element array (`person.filter(age >= 21)`).
Not supported, with a clear error: `@{...}` context references (Journey Optimizer only),
typographic quotes, unknown functions (the error suggests the nearest name).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from functools import cached_property

from audiences.pql import ast
from audiences.pql import timeutil as T
from audiences.pql.analysis import References, analyze, clause_window
from audiences.pql.compiler import Compiler, Ctx
from audiences.pql.jsonform import from_json as _tree_from_json
from audiences.pql.jsonform import to_json as _tree_to_json
from audiences.pql.lexer import PQLError
from audiences.pql.parser import parse_text
from audiences.pql.printer import to_pql as _print
from audiences.pql.values import truthy

__all__ = ["PQLError", "Query", "parse", "from_json", "References"]

log = logging.getLogger(__name__)


class Query:
    """A parsed PQL expression. Equal queries have equal trees."""

    def __init__(self, tree: ast.Query) -> None:
        self.tree = tree

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Query) and other.tree == self.tree

    def __hash__(self) -> int:
        return hash(self.tree)

    def __repr__(self) -> str:
        return f"<Query {self.to_pql()}>"

    def to_pql(self) -> str:
        return _print(self.tree)

    def to_json(self) -> dict:
        return _tree_to_json(self.tree)

    @cached_property
    def references(self) -> References:
        return analyze(self.tree)

    @cached_property
    def _compiled(self):
        return Compiler().compile_query(self.tree)

    def evaluate(self, profile, events, *, now: datetime, segments=frozenset(),
                 events_in_order: bool = False) -> bool:
        """Does this profile (with its events) qualify at `now`? Never raises on data.

        `events_in_order=True` promises that `events` are sorted oldest first by timestamp
        (Sift's store loads them so); rolling windows then skip older events unread. A false
        promise gives wrong answers, so leave it off for lists of unknown order."""
        try:
            return self.evaluate_strict(profile, events, now=now, segments=segments,
                                        events_in_order=events_in_order)
        except Exception:  # the contract: data never makes evaluation fail
            log.exception("PQL evaluation failed for %s", self.to_pql())
            return False

    def evaluate_strict(self, profile, events, *, now: datetime, segments=frozenset(),
                        events_in_order: bool = False) -> bool:
        """`evaluate` without the safety net (tests use it to see any failure)."""
        now = _aware(now)
        ctx = Ctx(profile, events, now, segments if segments is not None else frozenset(),
                  events_in_order)
        return truthy(self._compiled(ctx))

    def value(self, profile, events, *, now: datetime, segments=frozenset()):
        """The raw value of the expression (computed attributes, tests)."""
        ctx = Ctx(profile, events, _aware(now), segments)
        return self._compiled(ctx)

    def recheck_at(self, profile, events, *, now: datetime, segments=frozenset()
                   ) -> datetime | None:
        """The earliest instant after `now` at which the result may change with no new data.

        Conservative: it may be early (a re-check then finds nothing changed and asks again),
        never late. None when time alone cannot change the result.
        """
        if not self.references.uses_now:
            return None
        now = _aware(now)
        candidates: list[datetime] = []
        timed = _event_times(events)
        for clause, steps in self._time_sites:
            relevant = timed
            if steps is not None:
                ctx = Ctx(profile, events, now, segments)
                relevant = [(t, e) for t, e in timed if any(
                    truthy(what(ctx, e)) and (where is None or truthy(where(ctx, e)))
                    for what, where in steps)]
            candidates.extend(_flips(clause, [t for t, _ in relevant], now))
        if self._calendar_functions:
            candidates.append(T.day_interval(now, 1)[0])
        future = [c for c in candidates if c > now]
        return min(future) if future else None

    @cached_property
    def _calendar_functions(self) -> bool:
        return any(isinstance(n, ast.Call) and n.obj is None and n.name in (
            "currentMonth", "currentYear", "currentDayOfMonth") for n in ast.walk(self.tree))

    @cached_property
    def _time_sites(self) -> list:
        """Every time clause, with the step predicates that select its events (CHAIN) or None
        (any event may matter)."""
        compiler = Compiler()
        sites = []
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Chain):
                for step in node.steps:
                    if step.when is None:
                        continue
                    what = compiler.item_fn(step.what)
                    where = compiler.item_fn(step.where) if step.where is not None else None
                    sites.append((step.when, [(what, where)]))
            elif isinstance(node, ast.Occurs):
                sites.append((node.clause, None))
        return sites

    def window_text(self) -> list[str]:
        return list(self.references.time_windows)


def _aware(now: datetime) -> datetime:
    if not isinstance(now, datetime):
        raise TypeError("now must be a datetime")
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _event_times(events) -> list:
    out = []
    for event in events if isinstance(events, list) else []:
        if isinstance(event, dict):
            moment = T.to_datetime(event.get("timestamp"))
            if moment is not None:
                out.append((moment, event))
    return out


def _next_boundary(now: datetime, unit: str) -> datetime:
    return T.shift(T.start_of(now, unit), 1, unit)


def _flips(clause: ast.Node, times: list[datetime], now: datetime) -> list[datetime]:
    """Instants at which `t occurs clause` may change for one of `times` as now advances."""
    out: list[datetime] = []
    refs = [getattr(clause, "ref", None), getattr(clause, "start", None),
            getattr(clause, "end", None)]
    for ref in refs:
        if isinstance(ref, ast.Today | ast.Yesterday | ast.Tomorrow):
            out.append(_next_boundary(now, "day"))
        elif isinstance(ref, ast.Period):
            out.append(_next_boundary(now, ref.unit))
    if isinstance(clause, ast.Relative) and isinstance(clause.ref, ast.Now):
        n, unit = clause.amount, clause.unit
        for t in times:
            if clause.direction == "before":
                out += [T.shift(t, n, unit), T.shift(t, n + 1, unit), t]
            elif clause.direction == "after":
                out += [T.shift(t, -n, unit), T.shift(t, -(n + 1), unit), t]
            else:
                out += [T.shift(t, -n, unit), T.shift(t, n, unit)]
    elif isinstance(clause, ast.Relative) and isinstance(clause.ref, ast.Today |
                                                          ast.Yesterday | ast.Tomorrow):
        out.append(_next_boundary(now, "day"))
    elif isinstance(clause, ast.Directional) and isinstance(clause.ref, ast.Now):
        out += list(times)
    return out


def parse(text: str) -> Query:
    """Parse PQL text; raises PQLError (message, line, column, hint) and nothing else."""
    return Query(parse_text(text))


def from_json(tree) -> Query:
    """A query from its `pql/json` tree (the inverse of `Query.to_json`)."""
    node = _tree_from_json(tree)
    if not isinstance(node, ast.Query):
        node = ast.Query((), node)
    return Query(node)


def lookback_of(clause) -> timedelta | None:
    return clause_window(clause)[0]
