"""Hypothesis strategies: random PQL trees and random profiles/events to run them on.

`queries()` builds boolean definitions of the shapes real audiences have (profile comparisons,
string functions, membership, existence, arithmetic, time windows, event filters with counts,
CHAIN sequences with WHEN/COUNT, inSegment), as canonical trees that print and parse back
identically. `profiles()` and `events()` generate data that hits the edges those trees care
about: missing fields, nulls, mixed types, arrays, timestamps on window boundaries. The batch
SQL compiler's differential tests reuse them, so every tree here is one both evaluators must
agree on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from audiences.pql import ast as A

NOW = datetime(2026, 11, 18, 15, 30, tzinfo=UTC)  # a Wednesday afternoon
ATTRIBUTE_PATHS = [
    ("homeAddress", "countryISO"), ("homeAddress", "stateProvince"), ("person", "name",
                                                                      "firstName"),
    ("person", "age"), ("loyalty", "points"), ("loyalty", "tier"), ("score",), ("vip",),
    ("tags",),
]
STRING_VALUES = ["US", "CA", "Canada", "us", "John", "Jo", "gold", "silver", "", "x%y"]
EVENT_TYPES = ["commerce.checkouts", "commerce.productViews", "web.webpagedetails.pageViews",
               "directMarketing.emailClicked", "Commerce.Checkouts"]
SEGMENT_IDS = ["seg-a", "seg-b"]


def _path(parts) -> A.Node:
    node: A.Node = A.Name(parts[0])
    for part in parts[1:]:
        node = A.Field(node, part)
    return node


paths = st.sampled_from(ATTRIBUTE_PATHS).map(_path)
string_literals = st.sampled_from(STRING_VALUES).map(A.Literal)
number_literals = st.one_of(st.integers(-5, 200), st.sampled_from([0.5, 2.5, 99.99])).map(
    A.Literal)
literals = st.one_of(string_literals, number_literals, st.booleans().map(A.Literal))
units = st.sampled_from(["minute", "hour", "day", "week", "month", "year"])


@st.composite
def comparisons(draw) -> A.Node:
    op = draw(st.sampled_from(A.COMPARISONS))
    return A.BinOp(op, draw(paths), draw(literals))


@st.composite
def string_calls(draw) -> A.Node:
    name = draw(st.sampled_from(["startsWith", "endsWith", "contains", "equals",
                                 "doesNotStartWith", "notEqualTo", "doesNotContain"]))
    args = [draw(string_literals)]
    if draw(st.booleans()):
        args.append(A.Literal(draw(st.booleans())))
    return A.Call(draw(paths), name, tuple(args))


@st.composite
def memberships(draw) -> A.Node:
    values = draw(st.lists(literals, min_size=1, max_size=3))
    return A.BinOp(draw(st.sampled_from(["in", "notIn"])), draw(paths),
                   A.ListLit(tuple(values)))


@st.composite
def existence(draw) -> A.Node:
    return A.Call(draw(paths), draw(st.sampled_from(["isNull", "isNotNull"])), ())


@st.composite
def arithmetic(draw) -> A.Node:
    op = draw(st.sampled_from(["+", "-", "*", "/", "%"]))
    expr = A.BinOp(op, draw(paths), draw(number_literals))
    return A.BinOp(draw(st.sampled_from([">", "<=", "="])), expr, draw(number_literals))


@st.composite
def like_matches(draw) -> A.Node:
    if draw(st.booleans()):
        return A.BinOp("like", draw(paths), A.Literal(draw(st.sampled_from(
            ["J%", "%a%", "_S", "US", "%"]))))
    return A.Call(draw(paths), "matches", (A.Literal(draw(st.sampled_from(
        ["^J", "(?i)^us$", "o", "[0-9]+"]))),))


@st.composite
def time_clauses(draw) -> A.Node:
    kind = draw(st.sampled_from(["relative", "today", "yesterday", "period", "before"]))
    if kind == "relative":
        return A.Relative(draw(st.sampled_from(["<=", "<", ">=", ">"])), draw(st.integers(0, 5)),
                          draw(units), "before", draw(st.sampled_from([A.Now(), A.Today()])))
    if kind == "today":
        return A.On(A.Today())
    if kind == "yesterday":
        return A.On(A.Yesterday())
    if kind == "period":
        return A.On(A.Period(draw(st.sampled_from(["this", "last"])),
                             draw(st.sampled_from(["day", "week", "month", "year"]))))
    return A.Directional("before", draw(st.sampled_from([A.Today(), A.Now()])))


def _event_type_condition(draw) -> A.Node:
    value = A.Literal(draw(st.sampled_from(EVENT_TYPES)))
    if draw(st.booleans()):
        return A.BinOp("=", A.Name("eventType"), value)
    return A.Call(A.Name("eventType"), "equals", (value, A.Literal(draw(st.booleans()))))


@st.composite
def event_filters(draw) -> A.Node:
    cond = _event_type_condition(draw)
    if draw(st.booleans()):
        cond = A.BinOp("and", cond, A.Occurs(A.Name("timestamp"), draw(time_clauses())))
    if draw(st.booleans()):
        cond = A.BinOp("and", cond, A.BinOp(">", A.Field(A.Field(A.Name("commerce"), "order"),
                                                          "priceTotal"), draw(number_literals)))
    counted = A.Call(A.Filter(A.XEvent(), cond), "count", ())
    return A.BinOp(draw(st.sampled_from([">", ">=", "="])), counted,
                   A.Literal(draw(st.integers(0, 3))))


@st.composite
def event_sums(draw) -> A.Node:
    cond = _event_type_condition(draw)
    total = A.Call(A.Filter(A.XEvent(), cond), "sum",
                   (A.Field(A.Field(A.Name("commerce"), "order"), "priceTotal"),))
    return A.BinOp(draw(st.sampled_from([">", "<="])), total, draw(number_literals))


@st.composite
def chains(draw) -> A.Node:
    count = draw(st.integers(1, 3))
    steps = []
    for index in range(count):
        when = draw(st.one_of(st.none(), time_clauses()))
        times = draw(st.one_of(st.none(), st.integers(2, 3)))
        steps.append(A.Step(f"C{index}", _event_type_condition(draw), when, times, None,
                            False))
    return A.Chain(A.XEvent(), "timestamp", tuple(steps))


@st.composite
def selects(draw) -> A.Node:
    cond = A.BinOp("=", A.Field(A.Name("X"), "eventType"),
                   A.Literal(draw(st.sampled_from(EVENT_TYPES))))
    if draw(st.booleans()):
        cond = A.BinOp("and", cond, A.Occurs(A.Field(A.Name("X"), "timestamp"),
                                             draw(time_clauses())))
    return A.Select((A.Binding("X", A.XEvent(), cond),))


in_segment = st.sampled_from(SEGMENT_IDS).map(
    lambda s: A.Call(None, "inSegment", (A.Literal(s),)))

atoms = st.one_of(comparisons(), string_calls(), memberships(), existence(), arithmetic(),
                  like_matches(), event_filters(), event_sums(), chains(), selects(),
                  in_segment)


def _combine(children):
    return st.one_of(
        st.tuples(st.sampled_from(["and", "or"]), children, children).map(
            lambda t: A.BinOp(t[0], t[1], t[2])),
        children.map(A.Not),
    )


conditions = st.recursive(atoms, _combine, max_leaves=4)


def queries():
    return conditions.map(lambda body: A.Query((), body))


# --- data -------------------------------------------------------------------------------

scalar_values = st.one_of(st.none(), st.sampled_from(STRING_VALUES), st.integers(-5, 200),
                          st.sampled_from([0.5, 2.5, 99.99, 100.0]), st.booleans())
field_values = st.one_of(scalar_values, st.lists(st.sampled_from(STRING_VALUES), max_size=3))


@st.composite
def profiles(draw) -> dict:
    profile: dict = {}
    for parts in ATTRIBUTE_PATHS:
        if draw(st.integers(0, 3)) == 0:
            continue  # missing
        node = profile
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = draw(field_values)
    return profile


offsets = st.one_of(
    st.sampled_from([timedelta(0), timedelta(hours=1), timedelta(hours=24),
                     timedelta(hours=24, seconds=1), timedelta(days=3), timedelta(days=7),
                     timedelta(days=31), timedelta(days=400),
                     NOW - NOW.replace(hour=0, minute=0, second=0, microsecond=0)]),
    st.integers(0, 60 * 24 * 40).map(lambda m: timedelta(minutes=m)),
)


@st.composite
def one_event(draw) -> dict:
    at = NOW - draw(offsets)
    event = {"_id": f"e{draw(st.integers(0, 10**9))}", "timestamp": at.isoformat(),
             "eventType": draw(st.sampled_from(EVENT_TYPES))}
    if draw(st.booleans()):
        event["commerce"] = {"order": {"priceTotal": draw(st.one_of(
            st.integers(0, 500), st.sampled_from([9.99, 0.5]), st.none()))}}
    return event


def events(max_size: int = 8):
    return st.lists(one_event(), max_size=max_size)


segment_sets = st.sets(st.sampled_from(SEGMENT_IDS)).map(frozenset)
