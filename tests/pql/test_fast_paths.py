"""The evaluator's fast paths (event-type tests read straight from the event dict, a one-pass
CHAIN scan over time-ordered events, a filter that tests its time window inline) answer
exactly what the general evaluation answers.

Each query is paired with a form the fast paths do not recognise (`… and true` defeats the
direct event-type test; a filter whose first conjunct is the time window takes the general
path), and both are evaluated on random event lists: shuffled or ordered, with ties, other
event types, missing or odd timestamps.
"""

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from audiences.pql import parse

NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
TYPES = ["a", "b", "c", "A", "other"]


def stamp(minutes_ago: int, style: int):
    moment = NOW - timedelta(minutes=minutes_ago)
    if style == 0:
        return moment.isoformat().replace("+00:00", "Z")
    if style == 1:
        return moment.astimezone(datetime.now().astimezone().tzinfo).isoformat()
    if style == 2:
        return moment  # an aware datetime, as the contract allows
    return "not a time"


event = st.builds(
    lambda kind, ago, style: {"eventType": kind, "timestamp": stamp(ago, style)},
    st.sampled_from(TYPES), st.integers(0, 60 * 24 * 5), st.sampled_from([0, 0, 0, 1, 2, 3]))
event_lists = st.lists(event, max_size=14)


def in_time_order(events):
    def key(e):
        value = e["timestamp"]
        if isinstance(value, datetime):
            return value
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return NOW
    return sorted(events, key=key)


CHAINS = [
    '[C0: WHAT(eventType = "a") WHEN(<= 24 hours before now), C1: WHAT(eventType = "b"), '
    'C2: WHAT(eventType = "c")]',
    '[C0: WHAT(eventType = "a") COUNT(2), C1: WHAT(eventType.equals("B", false)) '
    'WHEN(<= 2 days before now)]',
    '[C0: WHAT(eventType in ["a", "b"]), C1: WHAT(eventType = "a") COUNT(2)]',
    '[C0: WHAT(eventType = "c") WHEN(< 3 days before now), C1: WHAT(eventType = "c")]',
]


def general(chain: str) -> str:
    return chain.replace('")', '" and true)').replace('"])', '"] and true)').replace(
        'false))', 'false) and true)')


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(CHAINS), event_lists, st.booleans())
def test_chain_fast_paths_agree_with_the_general_search(steps, events, ordered):
    if ordered:
        events = in_time_order(events)
    fast = parse(f"CHAIN(xEvent, timestamp, {steps})")
    slow = parse(f"CHAIN(xEvent, timestamp, {general(steps)})")
    assert fast != slow  # the rewrite really changed the query
    assert fast.evaluate_strict({}, events, now=NOW) == slow.evaluate_strict(
        {}, events, now=NOW)


FILTERS = [
    ('xEvent[eventType = "a" and timestamp occurs <= 2 days before now].count() >= 2',
     'xEvent[timestamp occurs <= 2 days before now and eventType = "a"].count() >= 2'),
    ('xEvent[eventType.equals("A", false) and timestamp occurs < 1 days before now].count() > 0',
     'xEvent[timestamp occurs < 1 days before now and eventType.equals("A", false)].count() > 0'),
]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(FILTERS), event_lists)
def test_timed_filter_fast_path_agrees_with_the_general_filter(pair, events):
    fast, slow = (parse(text) for text in pair)
    assert fast.evaluate_strict({}, events, now=NOW) == slow.evaluate_strict(
        {}, events, now=NOW)


def test_chain_over_unordered_events_still_finds_the_order_in_time():
    # Listed newest first: a one-pass scan in list order would miss a -> b -> c.
    events = [{"eventType": "c", "timestamp": "2026-11-18T11:00:00Z"},
              {"eventType": "b", "timestamp": "2026-11-18T10:00:00Z"},
              {"eventType": "a", "timestamp": "2026-11-18T09:00:00Z"}]
    query = parse(f"CHAIN(xEvent, timestamp, {CHAINS[0]})")
    assert query.evaluate_strict({}, events, now=NOW) is True
    assert query.evaluate_strict({}, events[:2], now=NOW) is False


def test_chain_steps_need_strictly_later_events():
    same = "2026-11-18T10:00:00Z"
    events = [{"eventType": "a", "timestamp": same}, {"eventType": "b", "timestamp": same},
              {"eventType": "c", "timestamp": "2026-11-18T11:00:00Z"}]
    query = parse(f"CHAIN(xEvent, timestamp, {CHAINS[0]})")
    assert query.evaluate_strict({}, events, now=NOW) is False
