"""AST -> Python closures. Compiled once per query; evaluation never walks the tree.

Every closure takes one `Ctx` and returns a PQL value (None is null). Primitives are written so
that no profile or event shape makes them raise: a missing path or a type mismatch is null.
"""

from __future__ import annotations

import operator
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import lru_cache
from itertools import islice
from operator import itemgetter

from audiences.pql import ast as A
from audiences.pql import timeutil as T
from audiences.pql.values import (
    Interval,
    arithmetic,
    as_list,
    compare,
    is_number,
    member,
    sortable,
    truthy,
)

Fn = Callable[["Ctx"], object]
# Backtracking over CHAIN assignments is bounded; beyond it the search answers with what it
# found so far (no match), which only affects pathological event lists.
CHAIN_SEARCH_BUDGET = 200_000


class Ctx:
    __slots__ = ("profile", "events", "now", "segments", "scopes", "vars", "budget", "memo",
                 "ordered")

    def __init__(self, profile, events, now, segments, ordered: bool = False) -> None:
        self.profile = profile if isinstance(profile, dict) else {}
        self.events = events if isinstance(events, list) else []
        # The caller's promise that `events` are oldest first (Sift's store loads them so):
        # a rolling window may then bisect past older events instead of reading them.
        self.ordered = ordered
        self.now = now
        self.segments = segments
        self.scopes = [self.profile]
        self.vars: dict = {}
        self.budget = CHAIN_SEARCH_BUDGET
        self.memo: dict = {}  # per-evaluation values that do not depend on the item


def get(obj, name: str):
    """Field access; over a list it maps and flattens (pql.md §4)."""
    if isinstance(obj, dict):
        return obj.get(name)
    if isinstance(obj, list):
        out = []
        for item in obj:
            if isinstance(item, dict):
                value = item.get(name)
                if value is None:
                    continue
                if isinstance(value, list):
                    out.extend(v for v in value if v is not None)
                else:
                    out.append(value)
            elif isinstance(item, list):
                inner = get(item, name)
                if inner:
                    out.extend(inner)
        return out
    return None


@lru_cache(maxsize=4096)
def _regex(pattern: str):
    try:
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        return None


@lru_cache(maxsize=4096)
def _like_regex(pattern: str):
    parts = []
    for ch in pattern:
        if ch == "%":
            parts.append(".*")
        elif ch == "_":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)


def _existential(value, test) -> bool:
    if isinstance(value, list):
        return any(test(v) for v in value if v is not None)
    return value is not None and test(value)


def _str_test(value, other, case_sensitive, fn) -> bool:
    if not isinstance(other, str):
        return False

    def one(v) -> bool:
        if not isinstance(v, str):
            return False
        if case_sensitive:
            return fn(v, other)
        return fn(v.casefold(), other.casefold())

    return _existential(value, one)


def _negative(value, other, case_sensitive, fn) -> bool:
    """The negative string functions: both operands non-null, then not the positive test."""
    if value is None or other is None or not isinstance(other, str):
        return False
    if isinstance(value, list):
        strings = [v for v in value if isinstance(v, str)]
        if not strings:
            return False
        return not _str_test(strings, other, case_sensitive, fn)
    if not isinstance(value, str):
        return False
    return not _str_test(value, other, case_sensitive, fn)


def _case_flag(args_values, default=True) -> bool:
    if args_values and isinstance(args_values[-1], bool):
        return args_values[-1]
    return default


def _number_values(values) -> list:
    return [v for v in values if is_number(v)]


def _singular(name: str) -> str | None:
    if name.endswith("ies"):
        return name[:-3] + "y"
    if name.endswith("s") and len(name) > 1:
        return name[:-1]
    return None


class Compiler:
    """Compiles one query. `item_depth` counts item scopes (filters, WHAT, method arguments)
    lexically; `bound` holds variable names visible at this point."""

    def __init__(self) -> None:
        self.bound: list[set[str]] = [set()]
        self.item_depth = 0
        self.alias: list[str | None] = []
        self.labels: list[set[str]] = []

    # --- helpers ----------------------------------------------------------------------------
    def is_bound(self, name: str) -> bool:
        return any(name in scope for scope in self.bound)

    def in_item(self, fn_factory):
        self.item_depth += 1
        try:
            return fn_factory()
        finally:
            self.item_depth -= 1

    def with_vars(self, names, fn_factory):
        self.bound.append(set(names))
        try:
            return fn_factory()
        finally:
            self.bound.pop()

    def compile_query(self, query: A.Query) -> Fn:
        params = query.params
        if params:
            body = self.with_vars(params, lambda: self.c(query.body))
            first = params[0]

            def run(ctx: Ctx):
                ctx.vars[first] = ctx.profile
                return body(ctx)

            return run
        return self.c(query.body)

    def c(self, node: A.Node) -> Fn:
        method = getattr(self, "c_" + type(node).__name__, None)
        if method is None:  # pragma: no cover - every node type has a compiler
            raise TypeError(f"cannot compile {type(node).__name__}")
        return method(node)

    def pred(self, node: A.Node) -> Callable[[Ctx], bool]:
        fn = self.c(node)
        return lambda ctx: truthy(fn(ctx))

    # --- literals and names -------------------------------------------------------------
    def c_Literal(self, node: A.Literal) -> Fn:
        value = node.value
        return lambda ctx: value

    def c_ListLit(self, node: A.ListLit) -> Fn:
        items = [self.c(i) for i in node.items]
        if all(isinstance(i, A.Literal) for i in node.items):
            constant = [i.value for i in node.items]
            return lambda ctx: list(constant)
        return lambda ctx: [f(ctx) for f in items]

    def c_ObjectLit(self, node: A.ObjectLit) -> Fn:
        entries = [(k, self.c(v)) for k, v in node.entries]
        return lambda ctx: {k: f(ctx) for k, f in entries}

    def c_Param(self, node: A.Param) -> Fn:
        if node.position == 1:
            return lambda ctx: ctx.profile
        return lambda ctx: None

    def c_This(self, node: A.This) -> Fn:
        return lambda ctx: ctx.scopes[-1]

    def c_XEvent(self, node: A.XEvent) -> Fn:
        return lambda ctx: ctx.events

    def c_Up(self, node: A.Up) -> Fn:
        levels, name = node.levels, node.name

        def up(ctx: Ctx):
            index = len(ctx.scopes) - 1 - levels
            return get(ctx.scopes[max(index, 0)], name)

        return up

    def c_Name(self, node: A.Name) -> Fn:
        name = node.name
        if self.is_bound(name):
            return lambda ctx: ctx.vars.get(name)
        if self.item_depth == 0:
            return lambda ctx: ctx.profile.get(name)
        alias = self.alias[-1] if self.alias else None

        def lookup(ctx: Ctx):
            scopes = ctx.scopes
            item = scopes[-1]
            if isinstance(item, dict):
                value = item.get(name)
                if value is not None:
                    return value
            if name == alias:
                return item
            # Not on the item: fall back outwards, to the enclosing items and the profile.
            for outer in reversed(scopes[:-1]):
                value = get(outer, name) if isinstance(outer, dict) else None
                if value is not None:
                    return value
            return None

        return lookup

    def c_Field(self, node: A.Field) -> Fn:
        # Fast path: a dotted path from the profile walks dicts without intermediate closures.
        keys = []
        current: A.Node = node
        while isinstance(current, A.Field):
            keys.append(current.name)
            current = current.obj
        keys.reverse()
        if isinstance(current, A.Name) and self.item_depth == 0 and not self.is_bound(
                current.name):
            path = (current.name, *keys)

            def walk(ctx: Ctx):
                value = ctx.profile
                for key in path:
                    if type(value) is dict:
                        value = value.get(key)
                    else:
                        value = get(value, key)
                    if value is None:
                        return None
                return value

            return walk
        obj = self.c(node.obj)
        name = node.name
        return lambda ctx: get(obj(ctx), name)

    # --- operators ----------------------------------------------------------------------
    def c_Not(self, node: A.Not) -> Fn:
        inner = self.c(node.operand)
        return lambda ctx: not truthy(inner(ctx))

    def c_Neg(self, node: A.Neg) -> Fn:
        inner = self.c(node.operand)

        def neg(ctx: Ctx):
            value = inner(ctx)
            return -value if is_number(value) else None

        return neg

    def c_BinOp(self, node: A.BinOp) -> Fn:
        op = node.op
        left, right = self.c(node.left), self.c(node.right)
        if op == "and":
            return lambda ctx: truthy(left(ctx)) and truthy(right(ctx))
        if op == "or":
            return lambda ctx: truthy(left(ctx)) or truthy(right(ctx))
        if op in A.COMPARISONS:
            fast = self._item_field_equals(node)
            if fast is not None:
                return fast
            if isinstance(node.right, A.Literal) and type(node.right.value) is str and op == "=":
                constant = node.right.value

                def eq_str(ctx: Ctx):
                    value = left(ctx)
                    if type(value) is str:
                        return value == constant
                    return compare("=", value, constant)

                return eq_str
            return lambda ctx: compare(op, left(ctx), right(ctx))
        if op == "in":
            return lambda ctx: member(left(ctx), right(ctx)) is True
        if op == "notIn":

            def not_in(ctx: Ctx):
                value, collection = left(ctx), right(ctx)
                if value is None or collection is None or value == []:
                    return False
                return member(value, collection) is False

            return not_in
        if op == "like":

            def like(ctx: Ctx):
                pattern = right(ctx)
                if not isinstance(pattern, str):
                    return False
                regex = _like_regex(pattern)
                return _existential(left(ctx), lambda v: isinstance(v, str) and regex.fullmatch(
                    v) is not None)

            return like
        if op == "matches":
            return self._matches(left, right)
        return lambda ctx: arithmetic(op, left(ctx), right(ctx))

    def _item_field_equals(self, node: A.BinOp) -> Fn | None:
        """`eventType = "x"` inside an item scope: read the item directly (the hot path of
        event queries), falling back to the general lookup when the item lacks the field."""
        if not (node.op == "=" and self.item_depth > 0 and isinstance(node.left, A.Name)
                and isinstance(node.right, A.Literal) and type(node.right.value) is str
                and not self.is_bound(node.left.name)):
            return None
        name, constant = node.left.name, node.right.value
        general = self.c_Name(node.left)

        def item_equals(ctx: Ctx):
            item = ctx.scopes[-1]
            value = item.get(name) if type(item) is dict else None
            if value is None:
                value = general(ctx)
            if type(value) is str:
                return value == constant
            return compare("=", value, constant)

        return item_equals

    def _literal_equals(self, node: A.Call) -> Fn | None:
        """`eventType.equals("x", false)` with literal arguments: one comparison per call."""
        args = node.args
        if not args or not all(isinstance(a, A.Literal) for a in args):
            return None
        values = [a.value for a in args]
        case_sensitive = True
        if len(values) >= 2 and isinstance(values[-1], bool):
            case_sensitive = values.pop()
        if not values or not all(type(v) is str for v in values):
            return None
        receiver = self.c(node.obj)
        if case_sensitive:
            options = frozenset(values)

            def test(v) -> bool:
                return v in options
        else:
            folded = frozenset(v.casefold() for v in values)

            def test(v) -> bool:
                return v.casefold() in folded

        item_name = (node.obj.name if isinstance(node.obj, A.Name) and self.item_depth > 0
                     and not self.is_bound(node.obj.name) else None)

        def equals(ctx: Ctx):
            value = None
            if item_name is not None:
                item = ctx.scopes[-1]
                if type(item) is dict:
                    value = item.get(item_name)
            if value is None:
                value = receiver(ctx)
            if type(value) is str:
                return test(value)
            if isinstance(value, list):
                return any(type(v) is str and test(v) for v in value)
            return False

        return equals

    @staticmethod
    def _matches(left: Fn, right: Fn) -> Fn:
        def matches(ctx: Ctx):
            pattern = right(ctx)
            if not isinstance(pattern, str):
                return False
            regex = _regex(pattern)
            if regex is None:
                return False
            return _existential(left(ctx), lambda v: isinstance(v, str) and regex.search(
                v) is not None)

        return matches

    # --- time ---------------------------------------------------------------------------
    def ref(self, node: A.Node) -> Callable[[Ctx], Interval | None]:
        fn = self._ref(node)
        if isinstance(node, A.Today | A.Yesterday | A.Tomorrow | A.Period):
            # Depends only on `now`: compute once per evaluation.
            key = ("ref", id(node))

            def memoised(ctx: Ctx):
                value = ctx.memo.get(key)
                if value is None:
                    value = ctx.memo[key] = fn(ctx)
                return value

            return memoised
        return fn

    def _ref(self, node: A.Node) -> Callable[[Ctx], Interval | None]:
        if isinstance(node, A.Now):
            return lambda ctx: Interval(ctx.now, ctx.now)
        if isinstance(node, A.Today):
            return lambda ctx: Interval(*T.day_interval(ctx.now, 0))
        if isinstance(node, A.Yesterday):
            return lambda ctx: Interval(*T.day_interval(ctx.now, -1))
        if isinstance(node, A.Tomorrow):
            return lambda ctx: Interval(*T.day_interval(ctx.now, 1))
        if isinstance(node, A.Period):
            which, unit = node.which, node.unit
            return lambda ctx: Interval(*T.period(ctx.now, which, unit))
        if isinstance(node, A.StepRef):
            key = "@step:" + node.label
            return lambda ctx: ctx.vars.get(key)
        value = self.c(node)

        def from_value(ctx: Ctx):
            v = value(ctx)
            if isinstance(v, list):
                v = v[0] if len(v) == 1 else None
            if isinstance(v, Interval):
                return v
            moment = T.to_datetime(v) if v is not None and not isinstance(v, dict) else None
            return Interval(moment, moment) if moment is not None else None

        return from_value

    def clause(self, node: A.Node) -> Callable[[datetime, Ctx], bool]:
        if isinstance(node, A.Relative):
            ref = self.ref(node.ref)
            cmp, amount, unit, direction = node.cmp, node.amount, node.unit, node.direction

            if direction == "before" and cmp in ("<=", "<") and isinstance(
                    node.ref, A.Now | A.Today):
                # The rolling window: t must lie in (bound, ref.start]; compute bound once.
                key = ("window", id(node))
                inclusive = cmp == "<="

                def edges(ctx: Ctx) -> tuple[datetime, datetime, bool]:
                    found = ctx.memo.get(key)
                    if found is None:
                        r = ref(ctx)
                        found = ctx.memo[key] = (T.shift(r[0], -amount, unit), r[0], inclusive)
                    return found

                def window(t: datetime, ctx: Ctx) -> bool:
                    low, high, _ = edges(ctx)
                    return (t >= low if inclusive else t > low) and t <= high

                window.edges = edges  # lets hot loops compare against the bounds themselves
                return window

            def relative(t: datetime, ctx: Ctx) -> bool:
                r = ref(ctx)
                return r is not None and T.occurs_relative(t, cmp, amount, unit, direction, r)

            return relative
        if isinstance(node, A.Directional):
            ref = self.ref(node.ref)
            direction = node.direction

            def directional(t: datetime, ctx: Ctx) -> bool:
                r = ref(ctx)
                return r is not None and T.occurs_directional(t, direction, r)

            return directional
        if isinstance(node, A.Between):
            first, last = self.ref(node.start), self.ref(node.end)

            def between(t: datetime, ctx: Ctx) -> bool:
                a, b = first(ctx), last(ctx)
                return a is not None and b is not None and T.occurs_between(t, a, b)

            return between
        ref = self.ref(node.ref)

        def on(t: datetime, ctx: Ctx) -> bool:
            r = ref(ctx)
            return r is not None and T.occurs_on(t, r)

        return on

    def c_Occurs(self, node: A.Occurs) -> Fn:
        subject = self.c(node.subject)
        test = self.clause(node.clause)

        def occurs(ctx: Ctx):
            value = subject(ctx)
            values = value if isinstance(value, list) else [value]
            for v in values:
                if isinstance(v, Interval):
                    v = v.start
                moment = T.to_datetime(v) if v is not None and not isinstance(v, dict) else None
                if moment is not None and test(moment, ctx):
                    return True
            return False

        return occurs

    def c_Now(self, node) -> Fn:
        return lambda ctx: ctx.now

    def c_Today(self, node) -> Fn:
        return lambda ctx: Interval(*T.day_interval(ctx.now, 0))

    def c_Yesterday(self, node) -> Fn:
        return lambda ctx: Interval(*T.day_interval(ctx.now, -1))

    def c_Tomorrow(self, node) -> Fn:
        return lambda ctx: Interval(*T.day_interval(ctx.now, 1))

    # --- filters, lambdas, calls ----------------------------------------------------------
    def item_fn(self, node: A.Node, alias: str | None = None) -> Callable[[Ctx, object], object]:
        """Compile `node` to run with an item pushed as the current scope."""
        if isinstance(node, A.Lambda):
            params = node.params
            body = self.with_vars(params, lambda: self.in_item(lambda: self.c(node.body)))

            def run_lambda(ctx: Ctx, item):
                if len(params) == 2 and isinstance(item, tuple) and len(item) == 2:
                    ctx.vars[params[0]], ctx.vars[params[1]] = item
                else:
                    ctx.vars[params[0]] = item
                ctx.scopes.append(item)
                try:
                    return body(ctx)
                finally:
                    ctx.scopes.pop()

            return run_lambda
        self.alias.append(alias)
        try:
            body = self.in_item(lambda: self.c(node))
        finally:
            self.alias.pop()

        def run(ctx: Ctx, item):
            ctx.scopes.append(item)
            try:
                return body(ctx)
            finally:
                ctx.scopes.pop()

        return run

    def c_Filter(self, node: A.Filter) -> Fn:
        obj = self.c(node.obj)
        alias = _alias_of(node.obj)
        cond = self.item_fn(node.cond, alias)
        first, rest = _split_first_conjunct(node.cond)
        direct = direct_predicate(first) if not self.is_bound("eventType") else None
        if direct is None:
            return lambda ctx: [item for item in as_list(obj(ctx)) if truthy(cond(ctx, item))]
        remaining = self.item_fn(rest, alias) if rest is not None else None
        spec = getattr(direct, "spec", None)
        timed = self.direct_occurs(rest) if spec is not None and rest is not None else None
        if timed is not None:
            # `eventType = "x" and timestamp occurs …`, the commonest event filter: both tests
            # read the event dict directly; any other shape takes the general path.
            field, options, folded = spec
            ts_field, when = timed
            parse_text = T.parse_text

            def filtered_timed(ctx: Ctx):
                out = []
                raw = obj(ctx)
                items = raw if type(raw) is list else as_list(raw)  # read only: no copy
                window = _window(when, ctx)
                start = _window_start(ctx, items, ts_field, window[1])  # older: no match
                for item in items[start:] if start else items:
                    if type(item) is dict:
                        value = item.get(field)
                        stamp = item.get(ts_field)
                        if type(value) is str and type(stamp) is str:
                            if (value.casefold() if folded else value) in options:
                                moment = parse_text(stamp)
                                if moment is not None and _within(window, moment, ctx):
                                    out.append(item)
                            continue
                    if truthy(cond(ctx, item)):
                        out.append(item)
                return out

            return filtered_timed

        def filtered(ctx: Ctx):
            out = []
            for item in as_list(obj(ctx)):
                quick = direct(item) if type(item) is dict else None
                if quick is None:
                    if truthy(cond(ctx, item)):
                        out.append(item)
                elif quick and (remaining is None or truthy(remaining(ctx, item))):
                    out.append(item)
            return out

        return filtered

    def direct_occurs(self, node: A.Node) -> tuple[str, Callable] | None:
        """For `field occurs <clause>` on the current item (field not a bound variable): the
        field and the compiled clause, so a loop can test a plain-text timestamp itself."""
        if isinstance(node, A.Occurs) and isinstance(node.subject, A.Name) and not \
                self.is_bound(node.subject.name) and not any(
                    isinstance(n, A.StepRef) for n in A.walk(node.clause)):
            return node.subject.name, self.clause(node.clause)
        return None

    def c_Lambda(self, node: A.Lambda) -> Fn:
        # A lambda outside a call argument only makes sense as the whole query body.
        body = self.with_vars(node.params, lambda: self.c(node.body))
        first = node.params[0] if node.params else None

        def run(ctx: Ctx):
            if first:
                ctx.vars[first] = ctx.profile
            return body(ctx)

        return run

    def c_Call(self, node: A.Call) -> Fn:
        if node.obj is None:
            return self.function(node)
        return self.method(node)

    def function(self, node: A.Call) -> Fn:
        name = node.name
        args = [self.c(a) for a in node.args]
        if name == "if":
            test, then, other = args
            return lambda ctx: then(ctx) if truthy(test(ctx)) else other(ctx)
        if name == "date":
            y, m, d = args

            def make_date(ctx: Ctx):
                year, month, day = y(ctx), m(ctx), d(ctx)
                if not all(is_number(v) and float(v).is_integer() for v in (year, month, day)):
                    return None
                try:
                    start = datetime(int(year), int(month), int(day), tzinfo=T.MIN_TS.tzinfo)
                except (ValueError, OverflowError):
                    return None
                return Interval(*T.day_interval(start, 0))

            return make_date
        if name == "currentMonth":
            return lambda ctx: ctx.now.month
        if name == "currentYear":
            return lambda ctx: ctx.now.year
        if name == "currentDayOfMonth":
            return lambda ctx: ctx.now.day
        if name == "inSegment":
            target = args[0]

            def in_segment(ctx: Ctx):
                value = target(ctx)
                return isinstance(value, str) and value in ctx.segments

            return in_segment
        if name == "mapEntry":
            key, value = args
            return lambda ctx: (key(ctx), value(ctx))
        raise TypeError(name)  # pragma: no cover - the parser rejects unknown functions

    def method(self, node: A.Call) -> Fn:
        name = node.name
        obj = self.c(node.obj)
        alias = _alias_of(node.obj)
        raw = node.args
        if name in ("sum", "average", "min", "max"):
            per_item = self.item_fn(raw[0], alias) if raw else None
            kind = name

            def aggregate(ctx: Ctx):
                items = as_list(obj(ctx))
                values = [per_item(ctx, i) for i in items] if per_item else items
                return reduce_values(kind, values)

            return aggregate
        if name in ("filter", "exists"):
            cond = self.item_fn(raw[0], alias)
            if name == "filter":
                return lambda ctx: [i for i in as_list(obj(ctx)) if truthy(cond(ctx, i))]
            return lambda ctx: any(truthy(cond(ctx, i)) for i in as_list(obj(ctx)))
        if name == "groupBy":
            key_fn = self.item_fn(raw[0], alias)

            def group_by(ctx: Ctx):
                groups: dict = {}
                for item in as_list(obj(ctx)):
                    key = key_fn(ctx, item)
                    if isinstance(key, list | dict):
                        key = repr(key)
                    groups.setdefault(key, []).append(item)
                return groups

            return group_by
        if name == "map":
            fn = self.item_fn(raw[0], alias)

            def map_(ctx: Ctx):
                receiver = obj(ctx)
                items = list(receiver.items()) if isinstance(receiver, dict) else as_list(
                    receiver)
                out = [fn(ctx, item) for item in items]
                if out and all(isinstance(o, tuple) and len(o) == 2 for o in out):
                    try:
                        return dict(out)
                    except TypeError:
                        return out
                return out

            return map_
        if name in ("topN", "bottomN"):
            key_fn = self.item_fn(raw[0], alias)
            count = self.c(raw[1])
            descending = name == "topN"

            def top(ctx: Ctx):
                n = count(ctx)
                if not is_number(n):
                    return None
                scored = [(key_fn(ctx, i), i) for i in as_list(obj(ctx))]
                ordered_keys = sortable([k for k, _ in scored if k is not None])
                rank = {id(k): pos for pos, k in enumerate(ordered_keys)}
                usable = [(k, i) for k, i in scored if id(k) in rank]
                usable.sort(key=lambda pair: rank[id(pair[0])], reverse=descending)
                return [i for _, i in usable[: max(int(n), 0)]]

            return top
        if name == "equals":
            fast = self._literal_equals(node)
            if fast is not None:
                return fast
        args = [self.c(a) for a in raw]
        simple = SIMPLE_METHODS.get(name)
        if simple is not None:
            return lambda ctx: simple(obj(ctx), [a(ctx) for a in args])
        raise TypeError(name)  # pragma: no cover

    # --- comprehensions -----------------------------------------------------------------
    def bindings(self, bindings: tuple) -> Callable[[Ctx, Callable[[Ctx], object]], object]:
        """Compile bindings left to right; returns an iterator factory over tuples."""
        compiled = []
        names: list[str] = []
        for binding in bindings:
            source = self.with_vars(list(names), lambda b=binding: self.c(b.source))
            names.append(binding.var)
            where = (self.with_vars(list(names), lambda b=binding: self.pred(b.where))
                     if binding.where is not None else None)
            compiled.append((binding.var, source, where))
        return compiled

    def iterate(self, compiled, ctx: Ctx, depth: int = 0):
        var, source, where = compiled[depth]
        for item in as_list(source(ctx)):
            ctx.vars[var] = item
            if where is not None and not where(ctx):
                continue
            if depth + 1 == len(compiled):
                yield tuple(ctx.vars[v] for v, _, _ in compiled)
            else:
                yield from self.iterate(compiled, ctx, depth + 1)

    def c_Select(self, node: A.Select) -> Fn:
        compiled = self.with_vars([b.var for b in node.bindings],
                                  lambda: self.bindings(node.bindings))
        single = len(compiled) == 1
        iterate = self.iterate

        def select(ctx: Ctx):
            saved = dict(ctx.vars)
            try:
                rows = list(iterate(compiled, ctx))
            finally:
                ctx.vars = saved
            return [r[0] for r in rows] if single else [list(r) for r in rows]

        return select

    def c_Quantifier(self, node: A.Quantifier) -> Fn:
        compiled = self.with_vars([b.var for b in node.bindings],
                                  lambda: self.bindings(node.bindings))
        iterate = self.iterate
        if node.kind == "exists":

            def exists(ctx: Ctx):
                saved = dict(ctx.vars)
                try:
                    return next(iterate(compiled, ctx), None) is not None
                finally:
                    ctx.vars = saved

            return exists

        def forall(ctx: Ctx, depth: int = 0):
            var, source, where = compiled[depth]
            saved = dict(ctx.vars)
            try:
                for item in as_list(source(ctx)):
                    ctx.vars[var] = item
                    if where is not None and not where(ctx):
                        return False
                    if depth + 1 < len(compiled) and not forall(ctx, depth + 1):
                        return False
                return True
            finally:
                ctx.vars = saved

        return forall

    def c_Aggregate(self, node: A.Aggregate) -> Fn:
        names = [b.var for b in node.bindings]
        compiled = self.with_vars(names, lambda: self.bindings(node.bindings))
        expr = self.with_vars(names, lambda: self.c(node.expr)) if node.expr else None
        kind = node.kind
        iterate = self.iterate

        def aggregate(ctx: Ctx):
            saved = dict(ctx.vars)
            try:
                values = [expr(ctx) if expr else row[0] for row in iterate(compiled, ctx)]
            finally:
                ctx.vars = saved
            return reduce_values(kind, values)

        return aggregate

    def c_Let(self, node: A.Let) -> Fn:
        value = self.c(node.value)
        body = self.with_vars([node.name], lambda: self.c(node.body))
        name = node.name

        def let(ctx: Ctx):
            saved = ctx.vars.get(name, _MISSING)
            ctx.vars[name] = value(ctx)
            try:
                return body(ctx)
            finally:
                if saved is _MISSING:
                    ctx.vars.pop(name, None)
                else:
                    ctx.vars[name] = saved

        return let

    # --- CHAIN ----------------------------------------------------------------------------
    def c_Chain(self, node: A.Chain) -> Fn:
        array = self.c(node.array)
        ts_field = node.ts_field
        steps = []
        uses_refs = False
        for step in node.steps:
            what = self.item_fn(step.what)
            where = self.item_fn(step.where) if step.where is not None else None
            when = self.clause(step.when) if step.when is not None else None
            if step.when is not None and any(isinstance(n, A.StepRef) for n in A.walk(step.when)):
                uses_refs = True
            direct = direct_predicate(step.what) if step.where is None and not self.is_bound(
                "eventType") else None
            steps.append(_StepPlan(step.label, what, where, when, step.count or 1, step.negated,
                                   direct))
        decided: dict = {}  # event-type value -> step flags, shared by every evaluation
        specs = [getattr(step.direct, "spec", None) for step in steps]
        if len(steps) > 1 and not uses_refs and not any(step.negated for step in steps) and \
                all(spec is not None for spec in specs) and len({s[0] for s in specs}) == 1:
            # Positive steps that only test the event type: the one-pass scan, decided at
            # compile time rather than per evaluation.
            field = specs[0][0]

            def scanned(ctx: Ctx):
                events = array(ctx)
                items = events if type(events) is list else as_list(events)
                # Every step's event is at or after the first step's: when that step has a
                # rolling window, the older events of an ordered list are never read.
                start = _window_start(ctx, items, ts_field, _window(steps[0].when, ctx)[1])
                answer = _scan_in_order(ctx, items[start:] if start else items, ts_field,
                                        steps, field, specs, decided)
                if answer is None:
                    return chain_match(ctx, items, ts_field, steps, uses_refs, decided)
                return answer

            return scanned
        return lambda ctx: chain_match(ctx, array(ctx), ts_field, steps, uses_refs, decided)


_MISSING = object()
_first = operator.itemgetter(0)


class _StepPlan:
    __slots__ = ("label", "what", "where", "when", "count", "negated", "direct")

    def __init__(self, label, what, where, when, count, negated, direct=None) -> None:
        self.label, self.what, self.where, self.when = label, what, where, when
        self.count, self.negated = count, negated
        # A test reading one field of the event dict directly (None: use `what`/`where`).
        self.direct = direct


def direct_predicate(node: A.Node):
    """For `eventType = "x"`, `eventType.equals("x", false)`, `eventType in [...]` (and `or` of
    them): a function event -> True/False, or None when the event lacks the field (then the
    general evaluation, with its fall-back to outer scopes, decides)."""
    if isinstance(node, A.BinOp) and node.op == "or":
        left, right = direct_predicate(node.left), direct_predicate(node.right)
        if left is None or right is None:
            return None

        def either(event):
            a = left(event)
            if a is None:
                return None
            if a:
                return True
            return right(event)

        return either
    field = None
    options: frozenset = frozenset()
    folded = False
    if isinstance(node, A.BinOp) and node.op in ("=", "in") and isinstance(node.left, A.Name):
        field = node.left.name
        if isinstance(node.right, A.Literal) and type(node.right.value) is str and node.op == "=":
            options = frozenset([node.right.value])
        elif isinstance(node.right, A.ListLit) and node.op == "in" and all(
                isinstance(i, A.Literal) and type(i.value) is str for i in node.right.items):
            options = frozenset(i.value for i in node.right.items)
        else:
            return None
    elif isinstance(node, A.Call) and node.name == "equals" and isinstance(node.obj, A.Name) \
            and node.args and all(isinstance(a, A.Literal) for a in node.args):
        values = [a.value for a in node.args]
        if len(values) >= 2 and isinstance(values[-1], bool):
            folded = not values.pop()
        if not values or not all(type(v) is str for v in values):
            return None
        field = node.obj.name
        options = frozenset(v.casefold() for v in values) if folded else frozenset(values)
    else:
        return None

    def test(event):
        value = event.get(field)
        if type(value) is str:
            return (value.casefold() if folded else value) in options
        return None  # missing, or not a plain string: let the general path decide

    test.spec = (field, options, folded)  # lets hot loops inline the test
    return test


_DECIDED_LIMIT = 4096  # distinct event-type values remembered per compiled CHAIN


def chain_match(ctx: Ctx, events, ts_field: str, steps: list[_StepPlan], uses_refs: bool,
                decided: dict | None = None) -> bool:
    """Is there an assignment of distinct events, strictly increasing in time, to the steps?

    A step with COUNT(n) takes its first n matching events after the previous step; its time is
    that of the n-th. A negated step forbids a matching event between its neighbours.
    """
    items = events if isinstance(events, list) else as_list(events)
    if len(steps) == 1 and not steps[0].negated and not uses_refs:
        return _single_step(ctx, items, ts_field, steps[0])
    # Time-independent part of each step first; only events some step wants are timed/sorted.
    rows = []
    specs = [getattr(step.direct, "spec", None) for step in steps]
    if all(spec is not None for spec in specs) and len({spec[0] for spec in specs}) == 1 and \
            all(step.where is None for step in steps):
        field = specs[0][0]
        # Event types repeat: decide each distinct value once.
        if decided is None:
            decided = {}
        leftovers = []
        parse_text, to_datetime = T.parse_text, T.to_datetime
        for event in items:
            if type(event) is not dict:
                continue
            value = event.get(field)
            if type(value) is not str:
                leftovers.append(event)  # no plain value: the general path decides
                continue
            flags = decided.get(value, _MISSING)
            if flags is _MISSING:
                flags = _decide(decided, specs, value)
            if flags:
                stamp = event.get(ts_field)
                moment = parse_text(stamp) if type(stamp) is str else to_datetime(stamp)
                if moment is not None:
                    rows.append((moment, event, flags))
        items = leftovers
    for event in items:
        if type(event) is not dict:
            continue
        flags = []
        wanted = False
        for step in steps:
            ok = step.direct(event) if step.direct is not None else None
            if ok is None:
                ok = truthy(step.what(ctx, event))
                if ok and step.where is not None:
                    ok = truthy(step.where(ctx, event))
            flags.append(ok)
            wanted = wanted or ok
        if wanted:
            moment = T.to_datetime(event.get(ts_field))
            if moment is not None:
                rows.append((moment, event, flags))
    if not rows:
        return False
    rows.sort(key=_first)
    if not uses_refs and not any(step.negated for step in steps):
        return _earliest(ctx, ((moment, flags) for moment, _, flags in rows), steps)
    timed = [(moment, event) for moment, event, _ in rows]
    static = [[row[2][k] for row in rows] for k in range(len(steps))]
    saved = dict(ctx.vars)
    try:
        return _search(ctx, timed, steps, static, 0, None, None, uses_refs)
    finally:
        ctx.vars = saved


def _decide(decided: dict, specs: list, value: str) -> list[bool] | bool:
    """Which steps an event-type value satisfies (False: none), remembered in `decided`."""
    if len(decided) > _DECIDED_LIMIT:
        decided.clear()
    folded_value = value.casefold()
    computed = [(folded_value if folded else value) in options for _, options, folded in specs]
    flags = decided[value] = computed if True in computed else False
    return flags


def _scan_in_order(ctx: Ctx, items: list, ts_field: str, steps: list[_StepPlan], field: str,
                   specs: list, decided: dict) -> bool | None:
    """`_earliest` for positive steps that only test the event type, with the per-event work
    done by C-level `map`s: stored events come oldest first, so the wanted events' times need
    no sort, and a rolling window on the first step bisects past everything older. None when
    an event is not a plain dict with text type and timestamp, or the wanted events are not in
    time order (the caller then takes the general path)."""
    try:
        kinds = list(map(decided.get, map(itemgetter(field), items)))
    except (KeyError, TypeError, IndexError):  # not a dict, no type, an unhashable type
        return None
    if None in kinds:  # event types not seen before
        for index, known in enumerate(kinds):
            if known is None:
                value = items[index][field]
                if type(value) is not str:
                    return None
                kinds[index] = _decide(decided, specs, value)
    wanted = [index for index, known in enumerate(kinds) if known]
    if not wanted:
        return False
    try:
        moments = list(map(T.parse_text, [items[index][ts_field] for index in wanted]))
    except (KeyError, TypeError, AttributeError):  # no timestamp, or not text
        return None
    if None in moments or any(map(operator.gt, moments, islice(moments, 1, None))):
        return None  # unreadable times or not oldest first: sort in the general path
    flags = [kinds[index] for index in wanted]
    # Every step's event is at or after the first step's: skip what its window excludes.
    _, low, _, inclusive = _window(steps[0].when, ctx)
    first = 0 if low is None else (bisect_left if inclusive else bisect_right)(moments, low)
    return _earliest(ctx, zip(moments[first:], flags[first:], strict=True), steps)


def _window_start(ctx: Ctx, items: list, ts_field: str, low: datetime | None) -> int:
    """The index of the first event at or after `low` when the caller promised the profile's
    events are oldest first and `items` are those events; 0 (read everything) otherwise, or
    when a timestamp on the way cannot be read."""
    if low is None or not ctx.ordered or items is not ctx.events or not items:
        return 0
    try:
        return bisect_left(items, low, key=lambda event: T.parse_text(event[ts_field]))
    except (KeyError, TypeError, AttributeError):  # not a dict, no timestamp, not text
        return 0


def _earliest(ctx: Ctx, timed: Iterable[tuple[datetime, list]], steps: list[_StepPlan]
              ) -> bool:
    """Positive steps whose WHEN does not refer to other steps, over (moment, step flags) in
    time order: taking each step's earliest events is optimal (a later choice only leaves
    fewer events for the steps after it), so one pass decides."""
    last = len(steps) - 1
    k, found, prev = 0, 0, None
    step = steps[0]
    window = _window(step.when, ctx)
    for moment, flags in timed:
        if not flags[k] or (prev is not None and moment <= prev):
            continue
        if not _within(window, moment, ctx):
            continue
        found += 1
        if found == step.count:
            if k == last:
                return True
            k, found, prev = k + 1, 0, moment
            step = steps[k]
            window = _window(step.when, ctx)
    return False


def _window(when, ctx: Ctx) -> tuple:
    """(when, low, high, inclusive) for a compiled WHEN/occurs clause: the bounds when it is a
    rolling window (computed once per evaluation), None otherwise."""
    edges = getattr(when, "edges", None)
    if edges is None:
        return when, None, None, False
    low, high, inclusive = edges(ctx)
    return when, low, high, inclusive


def _within(window: tuple, moment: datetime, ctx: Ctx) -> bool:
    """Does `moment` satisfy the clause of `_window(...)` (no clause: always)?"""
    when, low, high, inclusive = window
    if low is None:
        return when is None or when(moment, ctx)
    return (low <= moment if inclusive else low < moment) and moment <= high


def _single_step(ctx: Ctx, items, ts_field: str, step: _StepPlan) -> bool:
    """The common case (one positive step): a scan, no sorting."""
    spec = getattr(step.direct, "spec", None)
    if spec is not None and step.where is None:
        return _single_step_inline(ctx, items, ts_field, step, *spec)
    found = 0
    what, where, when, need, direct = step.what, step.where, step.when, step.count, step.direct
    for event in items:
        if type(event) is not dict:
            continue
        ok = direct(event) if direct is not None else None
        if ok is None:
            ok = truthy(what(ctx, event)) and (where is None or truthy(where(ctx, event)))
        if not ok:
            continue
        moment = T.to_datetime(event.get(ts_field))
        if moment is None or (when is not None and not when(moment, ctx)):
            continue
        found += 1
        if found >= need:
            return True
    return False


def _single_step_inline(ctx: Ctx, items, ts_field: str, step: _StepPlan, field: str,
                        options: frozenset, folded: bool) -> bool:
    found, need, what = 0, step.count, step.what
    window = _window(step.when, ctx)
    to_datetime, parse_text = T.to_datetime, T.parse_text
    start = _window_start(ctx, items, ts_field, window[1])
    for event in items[start:] if start else items:
        if type(event) is not dict:
            continue
        value = event.get(field)
        if type(value) is str:
            if (value.casefold() if folded else value) not in options:
                continue
        elif not truthy(what(ctx, event)):
            continue
        stamp = event.get(ts_field)
        moment = parse_text(stamp) if type(stamp) is str else to_datetime(stamp)
        if moment is None or not _within(window, moment, ctx):
            continue
        found += 1
        if found >= need:
            return True
    return False


def _matches_step(ctx, step: _StepPlan, flags, timed, index) -> bool:
    if not flags[index]:
        return False
    if step.when is None:
        return True
    return step.when(timed[index][0], ctx)


def _search(ctx: Ctx, timed, steps, static, k: int, prev_time, pending_negations,
            exhaustive: bool) -> bool:
    """Assign steps[k:] after `prev_time`. `pending_negations` are negated steps waiting for the
    next positive step to close their interval (prev bound, step index)."""
    ctx.budget -= 1
    if ctx.budget < 0:
        return False
    if k == len(steps):
        # Trailing negations: nothing matching after their lower bound.
        for lower, index in pending_negations or ():
            step = steps[index]
            for i, (moment, _) in enumerate(timed):
                if (lower is None or moment > lower) and _matches_step(ctx, step, static[index],
                                                                       timed, i):
                    return False
        return True
    step = steps[k]
    if step.negated:
        return _search(ctx, timed, steps, static, k + 1, prev_time,
                       [*(pending_negations or []), (prev_time, k)], exhaustive)
    flags = static[k]
    candidates = [i for i, (moment, _) in enumerate(timed)
                  if (prev_time is None or moment > prev_time) and flags[i]]
    key = "@step:" + step.label
    for start in range(len(candidates)):
        chosen = []
        for i in candidates[start:]:
            if _matches_step(ctx, step, flags, timed, i):
                chosen.append(i)
                if len(chosen) == step.count:
                    break
        if len(chosen) < step.count:
            return False  # later starts only see fewer candidates
        first_time, step_time = timed[chosen[0]][0], timed[chosen[-1]][0]
        if pending_negations and _violates(ctx, timed, steps, static, pending_negations,
                                           first_time):
            # A later event for this step only widens the forbidden interval.
            if not exhaustive:
                return False
            continue
        ctx.vars[key] = Interval(step_time, step_time)
        if _search(ctx, timed, steps, static, k + 1, step_time, None, exhaustive):
            return True
        if not exhaustive and not _has_later_negation(steps, k):
            return False
    return False


def _has_later_negation(steps, k: int) -> bool:
    return any(s.negated for s in steps[k + 1:])


def _violates(ctx, timed, steps, static, pending, upper) -> bool:
    for lower, index in pending:
        step = steps[index]
        for i, (moment, _) in enumerate(timed):
            if (lower is None or moment > lower) and moment < upper and _matches_step(
                    ctx, step, static[index], timed, i):
                return True
    return False


def reduce_values(kind: str, values: list):
    numbers = _number_values(values)
    if kind == "sum":
        return sum(numbers) if numbers else 0
    if kind == "average":
        return sum(numbers) / len(numbers) if numbers else None
    usable = [v for v in values if v is not None and not isinstance(v, list | dict)]
    ordered = sortable(usable)
    if not ordered:
        return None
    return ordered[0] if kind == "min" else ordered[-1]


def _split_first_conjunct(node: A.Node) -> tuple[A.Node, A.Node | None]:
    """`a and b and c` -> (a, b and c); anything else -> (node, None)."""
    conjuncts = []

    def flatten(n):
        if isinstance(n, A.BinOp) and n.op == "and":
            flatten(n.left)
            flatten(n.right)
        else:
            conjuncts.append(n)

    flatten(node)
    if len(conjuncts) == 1:
        return node, None
    direct_index = next((i for i, c in enumerate(conjuncts) if direct_predicate(c)), None)
    if direct_index is None:
        return node, None
    first = conjuncts.pop(direct_index)
    rest = conjuncts[0]
    for c in conjuncts[1:]:
        rest = A.BinOp("and", rest, c)
    return first, rest


def _alias_of(node: A.Node) -> str | None:
    if isinstance(node, A.Field | A.Name):
        return _singular(node.name)
    return None


# --- methods that need no item scope -------------------------------------------------------


def _m_count(v, a):
    if v is None:
        return 0
    if isinstance(v, list | dict):
        return len(v)
    return 1


def _m_distinct(v, a):
    if v is None:
        return None
    seen, out = set(), []
    for item in as_list(v):
        key = repr(item)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _m_head(v, a):
    items = as_list(v)
    return items[0] if items else None


def _both_lists(v, other):
    if v is None or other is None:
        return None
    return as_list(v), as_list(other)


def _m_intersects(v, a):
    pair = _both_lists(v, a[0])
    return bool(pair) and any(member(x, pair[1]) for x in pair[0])


def _m_intersection(v, a):
    pair = _both_lists(v, a[0])
    if pair is None:
        return None
    return [x for x in pair[0] if member(x, pair[1])]


def _m_subset(v, a):
    pair = _both_lists(v, a[0])
    return bool(pair) and all(member(x, pair[1]) for x in pair[0])


def _m_superset(v, a):
    pair = _both_lists(v, a[0])
    return bool(pair) and all(member(x, pair[0]) for x in pair[1])


def _m_includes(v, a):
    return v is not None and member(a[0], as_list(v)) is True


def _m_get(v, a):
    if isinstance(v, dict):
        key = a[0]
        return v.get(key) if isinstance(key, str | int | float | bool) else None
    return None


def _m_keys(v, a):
    return list(v.keys()) if isinstance(v, dict) else None


def _m_values(v, a):
    return list(v.values()) if isinstance(v, dict) else None


def _string_method(fn, negative=False):
    def method(v, a):
        case_sensitive = _case_flag(a[1:]) if len(a) > 1 else True
        if negative:
            return _negative(v, a[0], case_sensitive, fn)
        return _str_test(v, a[0], case_sensitive, fn)

    return method


def _m_contains(v, a):
    if isinstance(v, list) and not all(isinstance(x, str) for x in v):
        return _m_includes(v, a)
    return _string_method(lambda s, t: t in s)(v, a)


def _m_equals(v, a):
    if len(a) >= 2 and isinstance(a[-1], bool):
        options, case_sensitive = a[:-1], a[-1]
    else:
        options, case_sensitive = a, True
    options = [o for o in options if isinstance(o, str)]
    if not options:
        return False
    return any(_str_test(v, option, case_sensitive, lambda s, t: s == t) for option in options)


def _m_not_equal(v, a):
    if v is None or (isinstance(v, list) and not v):
        return False
    return not _m_equals(v, a) and _str_test(v, "", True, lambda s, t: True)


def _m_matches(v, a):
    pattern = a[0]
    if not isinstance(pattern, str):
        return False
    regex = _regex(pattern)
    return regex is not None and _existential(v, lambda s: isinstance(s, str) and regex.search(
        s) is not None)


def _m_regex_group(v, a):
    pattern = a[0]
    group = a[1] if len(a) > 1 else 0
    if not isinstance(pattern, str) or not is_number(group) or not isinstance(v, str):
        return None
    regex = _regex(pattern)
    if regex is None:
        return None
    match = regex.search(v)
    if match is None:
        return None
    try:
        return match.group(int(group))
    except (IndexError, re.error):
        return None


def _is_null(v) -> bool:
    return v is None or (isinstance(v, list) and not v)


def _date_part(attr):
    def part(v, a):
        if isinstance(v, list):
            out = [part(x, a) for x in v]
            return [x for x in out if x is not None]
        if isinstance(v, Interval):
            v = v.start
        moment = T.to_datetime(v) if v is not None and not isinstance(v, dict) else None
        return getattr(moment, attr) if moment is not None else None

    return part


SIMPLE_METHODS = {
    "count": _m_count, "distinct": _m_distinct, "head": _m_head,
    "intersects": _m_intersects, "intersection": _m_intersection, "subsetOf": _m_subset,
    "supersetOf": _m_superset, "includes": _m_includes, "get": _m_get, "keys": _m_keys,
    "values": _m_values,
    "startsWith": _string_method(lambda s, t: s.startswith(t)),
    "doesNotStartWith": _string_method(lambda s, t: s.startswith(t), negative=True),
    "endsWith": _string_method(lambda s, t: s.endswith(t)),
    "doesNotEndWith": _string_method(lambda s, t: s.endswith(t), negative=True),
    "contains": _m_contains,
    "doesNotContain": _string_method(lambda s, t: t in s, negative=True),
    "equals": _m_equals, "notEqualTo": _m_not_equal, "matches": _m_matches,
    "regexGroup": _m_regex_group,
    "isNull": lambda v, a: _is_null(v), "isNotNull": lambda v, a: not _is_null(v),
    "getMonth": _date_part("month"), "getYear": _date_part("year"),
    "getDayOfMonth": _date_part("day"),
}
