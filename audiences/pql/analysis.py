"""Static facts about a query: what it reads, how far back it looks, where its events are.

These facts drive the streaming index (which definitions can a change affect), the look-back
used to load events, eligibility (audiences/eligibility.py) and the portal's explanations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from audiences.pql import ast as A
from audiences.pql import timeutil as T

DAY = timedelta(days=1)


@dataclass(frozen=True)
class EventAccess:
    """One place where the query looks at events: a CHAIN step, a select/exists/filter."""

    kind: str  # "step" | "select" | "filter" | "projection" | "aggregate"
    negated: bool  # a negated CHAIN step, or the access sits under a `not`
    window: timedelta | None  # how far back it can look; None = unbounded
    window_text: str  # the constraint as written, for explanations
    relative: bool  # the window moves with `now`
    counted: bool = False  # COUNT(n) with n > 1
    chain_id: int | None = None
    step_index: int | None = None


@dataclass(frozen=True)
class References:
    profile_paths: frozenset[str]
    # Lower-cased event types the query can react to (compare lower-cased); None: any type.
    event_types: frozenset[str] | None
    event_paths: frozenset[str]
    segment_ids: frozenset[str]
    uses_events: bool
    uses_now: bool
    lookback: timedelta | None  # longest event look-back; None = unbounded
    time_windows: tuple[str, ...]
    accesses: tuple[EventAccess, ...] = field(default=())
    aggregations: int = 0
    chains: int = 0
    segment_namespaces: frozenset[str] = field(default=frozenset())

    def to_dict(self) -> dict:
        return {
            "profilePaths": sorted(self.profile_paths),
            "eventTypes": sorted(self.event_types) if self.event_types is not None else None,
            "eventPaths": sorted(self.event_paths),
            "segmentIds": sorted(self.segment_ids),
            "usesEvents": self.uses_events,
            "usesNow": self.uses_now,
            "lookbackSeconds": (int(self.lookback.total_seconds())
                                if self.lookback is not None else None),
            "timeWindows": list(self.time_windows),
        }


def clause_window(clause: A.Node | None) -> tuple[timedelta | None, bool, str]:
    """How far back from now a time clause reaches (an upper bound), whether it is relative
    to now, and its text."""
    from audiences.pql.printer import Printer

    if clause is None:
        return None, False, ""
    text = Printer().clause(clause)
    if isinstance(clause, A.Relative) and clause.direction == "before" and clause.cmp in (
            "<", "<="):
        ref = clause.ref
        span = _unit_upper(clause.amount, clause.unit)
        if isinstance(ref, A.Now):
            return span, True, text
        if isinstance(ref, A.Today):
            return span + DAY, True, text
        if isinstance(ref, A.Yesterday):
            return span + 2 * DAY, True, text
        return None, False, text
    if isinstance(clause, A.Relative) and clause.direction == "before" and clause.cmp == "=":
        ref = clause.ref
        if isinstance(ref, A.Now | A.Today):
            return _unit_upper(clause.amount + 1, clause.unit) + DAY, True, text
    if isinstance(clause, A.On):
        ref = clause.ref
        if isinstance(ref, A.Today):
            return DAY, True, text
        if isinstance(ref, A.Yesterday):
            return 2 * DAY, True, text
        if isinstance(ref, A.Tomorrow):
            return timedelta(0), True, text
        if isinstance(ref, A.Period):
            if ref.which == "next":
                return timedelta(0), True, text
            reach = _unit_upper(1 if ref.which == "this" else 2, ref.unit)
            return reach, True, text
    if isinstance(clause, A.Relative) and clause.direction == "after":
        return timedelta(0), isinstance(clause.ref, A.Now | A.Today), text
    if isinstance(clause, A.Directional) and clause.direction == "after" and isinstance(
            clause.ref, A.Now | A.Today):
        return DAY, True, text
    return None, False, text


def _unit_upper(amount: int, unit: str) -> timedelta:
    """An upper bound of `amount` units as a duration (months as 31 days, years as 366)."""
    if unit in T.FIXED:
        return T.FIXED[unit] * amount
    return timedelta(days=31 * T.MONTHS[unit] * amount + 1)


def _path_of(node: A.Node) -> str | None:
    parts = []
    while isinstance(node, A.Field):
        parts.append(node.name)
        node = node.obj
    if isinstance(node, A.Name):
        parts.append(node.name)
    elif isinstance(node, A.Param) and node.position == 1:
        pass
    else:
        return None
    return ".".join(reversed(parts)) if parts else None


def _event_type_values(cond: A.Node | None, var: str | None) -> frozenset[str] | None:
    """Event types a per-event condition restricts to; None when it does not restrict."""
    if cond is None:
        return None
    if isinstance(cond, A.BinOp) and cond.op == "and":
        left, right = _event_type_values(cond.left, var), _event_type_values(cond.right, var)
        if left is None:
            return right
        if right is None:
            return left
        return left & right
    if isinstance(cond, A.BinOp) and cond.op == "or":
        left, right = _event_type_values(cond.left, var), _event_type_values(cond.right, var)
        if left is None or right is None:
            return None
        return left | right
    if isinstance(cond, A.BinOp) and cond.op in ("=", "in") and _is_event_type(cond.left, var):
        values = _literal_strings(cond.right)
        return frozenset(v.lower() for v in values) if values is not None else None
    if isinstance(cond, A.Call) and cond.name == "equals" and cond.obj is not None and \
            _is_event_type(cond.obj, var):
        values = [a.value for a in cond.args if isinstance(a, A.Literal)
                  and isinstance(a.value, str)]
        flags = [a for a in cond.args if isinstance(a, A.Literal) and isinstance(a.value, bool)]
        if values and len(values) + len(flags) == len(cond.args):
            return frozenset(v.lower() for v in values)
    return None


def _is_event_type(node: A.Node, var: str | None) -> bool:
    if var is None:
        return isinstance(node, A.Name) and node.name == "eventType"
    return isinstance(node, A.Field) and node.name == "eventType" and isinstance(
        node.obj, A.Name) and node.obj.name == var


def _literal_strings(node: A.Node) -> list[str] | None:
    if isinstance(node, A.Literal) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, A.ListLit) and all(isinstance(i, A.Literal) and isinstance(
            i.value, str) for i in node.items):
        return [i.value for i in node.items]
    return None


def _time_constraint(cond: A.Node | None, var: str | None) -> A.Node | None:
    """The conjunctive `timestamp occurs ...` clause of a per-event condition, if any."""
    if cond is None:
        return None
    if isinstance(cond, A.BinOp) and cond.op == "and":
        return _time_constraint(cond.left, var) or _time_constraint(cond.right, var)
    if isinstance(cond, A.Occurs):
        subject = cond.subject
        if var is None and isinstance(subject, A.Name) and subject.name == "timestamp":
            return cond.clause
        if var is not None and isinstance(subject, A.Field) and subject.name == "timestamp" \
                and isinstance(subject.obj, A.Name) and subject.obj.name == var:
            return cond.clause
    return None


class Analyzer:
    def __init__(self) -> None:
        self.profile_paths: set[str] = set()
        self.event_paths: set[str] = set()
        self.segment_ids: set[str] = set()
        self.segment_namespaces: set[str] = set()
        self.event_types: set[str] = set()
        self.any_event_type = False
        self.accesses: list[EventAccess] = []
        self.windows: list[str] = []
        self.uses_now = False
        self.aggregations = 0
        self.chains = 0

    def run(self, query: A.Query) -> References:
        bound = set(query.params)
        self.visit(query.body, bound=frozenset(bound), item=False, negated=False)
        uses_events = bool(self.accesses)
        if not uses_events:
            lookback: timedelta | None = timedelta(0)
        elif any(a.window is None for a in self.accesses):
            lookback = None
        else:
            lookback = max(a.window for a in self.accesses)
        return References(
            profile_paths=frozenset(self.profile_paths),
            event_types=(frozenset() if not uses_events
                         else None if self.any_event_type else frozenset(self.event_types)),
            event_paths=frozenset(self.event_paths), segment_ids=frozenset(self.segment_ids),
            uses_events=uses_events, uses_now=self.uses_now, lookback=lookback,
            time_windows=tuple(self.windows), accesses=tuple(self.accesses),
            aggregations=self.aggregations, chains=self.chains,
            segment_namespaces=frozenset(self.segment_namespaces))

    def note_types(self, types: frozenset[str] | None) -> None:
        if types is None:
            self.any_event_type = True
        else:
            self.event_types |= types

    def access(self, kind: str, negated: bool, clause: A.Node | None, **extra) -> None:
        window, relative, text = clause_window(clause)
        if text:
            self.windows.append(text)
        if relative:
            self.uses_now = True
        self.accesses.append(EventAccess(kind, negated, window, text, relative, **extra))

    def visit(self, node: A.Node, *, bound: frozenset, item: bool, negated: bool,
              event_var: str | None = None) -> None:
        if isinstance(node, A.Not):
            self.visit(node.operand, bound=bound, item=item, negated=not negated,
                       event_var=event_var)
            return
        if isinstance(node, A.Chain):
            self.chains += 1
            chain_id = self.chains
            for index, step in enumerate(node.steps):
                self.note_types(_event_type_values(step.what, None) if step.where is None else (
                    _event_type_values(A.BinOp("and", step.what, step.where), None)))
                self.access("step", negated or step.negated, step.when,
                            counted=(step.count or 1) > 1, chain_id=chain_id, step_index=index)
                for part in (step.what, step.where):
                    if part is not None:
                        self.visit(part, bound=bound, item=True, negated=False, event_var=None)
                if step.when is not None:
                    self._visit_clause(step.when, bound, item=True)
            return
        if isinstance(node, A.Select | A.Quantifier | A.Aggregate):
            names = set(bound)
            for binding in node.bindings:
                if isinstance(binding.source, A.XEvent):
                    kind = "aggregate" if isinstance(node, A.Aggregate) else "select"
                    if isinstance(node, A.Aggregate):
                        self.aggregations += 1
                    self.note_types(_event_type_values(binding.where, binding.var))
                    self.access(kind, negated or (isinstance(node, A.Quantifier)
                                                  and node.kind == "forall"),
                                _time_constraint(binding.where, binding.var))
                else:
                    self.visit(binding.source, bound=frozenset(names), item=item,
                               negated=negated)
                names.add(binding.var)
                if binding.where is not None:
                    self.visit(binding.where, bound=frozenset(names), item=item,
                               negated=negated, event_var=binding.var)
            if isinstance(node, A.Aggregate) and node.expr is not None:
                self.visit(node.expr, bound=frozenset(names), item=item, negated=negated)
            return
        if isinstance(node, A.Filter) and _is_xevent(node.obj):
            self.note_types(_event_type_values(node.cond, None))
            self.access("filter", negated, _time_constraint(node.cond, None))
            self.visit(node.cond, bound=bound, item=True, negated=False)
            return
        if isinstance(node, A.Field) and _is_xevent_root(node):
            self.any_event_type = True
            self.access("projection", negated, None)
            self.event_paths.add(_xevent_path(node))
            return
        if isinstance(node, A.Call) and node.obj is not None and _is_xevent(node.obj):
            if node.name in ("count", "sum", "average", "min", "max"):
                self.aggregations += 1
            self.any_event_type = True
            self.access("aggregate" if node.name != "exists" else "select", negated, None)
            for arg in node.args:
                self.visit(arg, bound=bound, item=True, negated=False)
            return
        if isinstance(node, A.Call) and node.obj is not None and isinstance(
                node.obj, A.Filter) and _is_xevent(node.obj.obj):
            if node.name in ("count", "sum", "average", "min", "max"):
                self.aggregations += 1
            self.note_types(_event_type_values(node.obj.cond, None))
            self.access("aggregate", negated, _time_constraint(node.obj.cond, None))
            self.visit(node.obj.cond, bound=bound, item=True, negated=False)
            for arg in node.args:
                self.visit(arg, bound=bound, item=True, negated=False)
            return
        if isinstance(node, A.XEvent):
            self.any_event_type = True
            self.access("projection", negated, None)
            return
        if isinstance(node, A.Call) and node.obj is None and node.name == "inSegment":
            if node.args and isinstance(node.args[0], A.Literal) and isinstance(
                    node.args[0].value, str):
                self.segment_ids.add(node.args[0].value)
            return
        if isinstance(node, A.Call) and node.obj is None and node.name in (
                "currentMonth", "currentYear", "currentDayOfMonth"):
            self.uses_now = True
            return
        if isinstance(node, A.Now | A.Today | A.Yesterday | A.Tomorrow | A.Period):
            self.uses_now = True
            return
        if isinstance(node, A.Occurs):
            self.visit(node.subject, bound=bound, item=item, negated=negated,
                       event_var=event_var)
            self._visit_clause(node.clause, bound, item)
            return
        if isinstance(node, A.Call) and node.name == "get" and node.obj is not None:
            path = _path_of(node.obj)
            if path == "segmentMembership" or (path or "").startswith("segmentMembership."):
                pass
            inner = node.obj
            if isinstance(inner, A.Call) and inner.name == "get" and _path_of(
                    inner.obj) == "segmentMembership" and inner.args and isinstance(
                    inner.args[0], A.Literal):
                self.segment_namespaces.add(str(inner.args[0].value))
                if node.args and isinstance(node.args[0], A.Literal) and str(
                        inner.args[0].value).lower() == "ups":
                    self.segment_ids.add(str(node.args[0].value))
        if isinstance(node, A.Field | A.Name) and not item:
            path = _path_of(node)
            if path is not None:
                head = path.split(".")[0]
                if head not in bound:
                    self.profile_paths.add(path)
                    return
        if isinstance(node, A.Field | A.Name) and item and event_var is None:
            path = _path_of(node)
            if path is not None:
                self.event_paths.add(path)
                return
        if isinstance(node, A.Field) and event_var is not None:
            path = _path_of(node)
            if path is not None and path.split(".")[0] == event_var:
                self.event_paths.add(path.split(".", 1)[1] if "." in path else "")
                return
        for child in node.children():
            self.visit(child, bound=bound, item=item, negated=negated, event_var=event_var)

    def _visit_clause(self, clause: A.Node, bound: frozenset, item: bool) -> None:
        for child in A.walk(clause):
            if isinstance(child, A.Now | A.Today | A.Yesterday | A.Tomorrow | A.Period):
                self.uses_now = True
        for ref in [getattr(clause, "ref", None), getattr(clause, "start", None),
                    getattr(clause, "end", None)]:
            if ref is not None and not isinstance(ref, A.TIME_REFS):
                self.visit(ref, bound=bound, item=item, negated=False)


def _is_xevent(node: A.Node) -> bool:
    return isinstance(node, A.XEvent)


def _is_xevent_root(node: A.Node) -> bool:
    while isinstance(node, A.Field):
        node = node.obj
    return isinstance(node, A.XEvent)


def _xevent_path(node: A.Node) -> str:
    parts = []
    while isinstance(node, A.Field):
        parts.append(node.name)
        node = node.obj
    return ".".join(reversed(parts))


def analyze(query: A.Query) -> References:
    return Analyzer().run(query)
