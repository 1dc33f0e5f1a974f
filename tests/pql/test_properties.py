"""Property tests: printing round-trips, parsing raises only PQLError, evaluation never raises."""

import json

from hypothesis import given
from hypothesis import strategies as st

from audiences.pql import PQLError, Query, from_json, parse
from tests.pql.strategies import NOW, events, profiles, queries, segment_sets

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
              st.text(max_size=8)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(
                                   ["homeAddress", "countryISO", "person", "age", "tags",
                                    "eventType", "timestamp", "commerce", "order", "priceTotal",
                                    "loyalty", "points", "tier", "score", "vip", "name"]),
                                   children, max_size=4)),
    max_leaves=12)


@given(queries())
def test_random_trees_round_trip_through_text(tree):
    query = Query(tree)
    assert parse(query.to_pql()) == query


@given(queries())
def test_random_trees_round_trip_through_pql_json(tree):
    query = Query(tree)
    assert from_json(json.loads(json.dumps(query.to_json()))) == query


@given(st.text(max_size=80))
def test_arbitrary_text_raises_nothing_but_pql_error(text):
    try:
        parse(text)
    except PQLError as error:
        assert error.line >= 1 and error.column >= 1


@given(st.lists(st.sampled_from(
    ['a', '.', 'b', '(', ')', '[', ']', '"x"', '1', '=', 'and', 'or', 'not', 'occurs', '<=',
     '3', 'days', 'before', 'now', 'CHAIN', 'WHAT', 'WHEN', ':', ',', 'select', 'from', 'where',
     'xEvent', 'sum', 'over', 'in', 'let', '!', '^', '$1', 'timestamp', 'C0', 'today']),
    max_size=25))
def test_token_soup_raises_nothing_but_pql_error(tokens):
    try:
        parse(" ".join(tokens))
    except PQLError:
        pass


@given(queries(), json_values, st.lists(json_values, max_size=4))
def test_arbitrary_json_profiles_and_events_never_make_evaluation_raise(tree, profile, events_):
    Query(tree).evaluate_strict(profile, events_, now=NOW)


@given(queries(), profiles(), events(), segment_sets)
def test_realistic_data_evaluates_and_rechecks_without_raising(tree, profile, events_, segs):
    query = Query(tree)
    result = query.evaluate_strict(profile, events_, now=NOW, segments=segs)
    assert isinstance(result, bool)
    recheck = query.recheck_at(profile, events_, now=NOW, segments=segs)
    assert recheck is None or recheck > NOW
