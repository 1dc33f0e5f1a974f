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
    expected = slow.evaluate_strict({}, events, now=NOW)
    assert fast.evaluate_strict({}, events, now=NOW) == expected
    if ordered:  # the promise of oldest-first events lets windows bisect
        assert fast.evaluate_strict({}, events, now=NOW, events_in_order=True) == expected


FILTERS = [
    ('xEvent[eventType = "a" and timestamp occurs <= 2 days before now].count() >= 2',
     'xEvent[timestamp occurs <= 2 days before now and eventType = "a"].count() >= 2'),
    ('xEvent[eventType.equals("A", false) and timestamp occurs < 1 days before now].count() > 0',
     'xEvent[timestamp occurs < 1 days before now and eventType.equals("A", false)].count() > 0'),
]


SINGLE = ('CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "a") WHEN(<= 24 hours before now) '
          'COUNT(2)])')


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(FILTERS), event_lists)
def test_timed_filter_fast_path_agrees_with_the_general_filter(pair, events):
    fast, slow = (parse(text) for text in pair)
    expected = slow.evaluate_strict({}, events, now=NOW)
    assert fast.evaluate_strict({}, events, now=NOW) == expected
    ordered = in_time_order(events)
    assert fast.evaluate_strict({}, ordered, now=NOW, events_in_order=True) == expected


@settings(max_examples=150, deadline=None)
@given(event_lists)
def test_single_step_window_skips_only_older_events(events):
    fast, slow = parse(SINGLE), parse(general(SINGLE))
    expected = slow.evaluate_strict({}, events, now=NOW)
    assert fast.evaluate_strict({}, events, now=NOW) == expected
    assert fast.evaluate_strict({}, in_time_order(events), now=NOW,
                                events_in_order=True) == expected


def test_the_order_promise_is_what_lets_a_window_skip_events():
    # Newest first, and promised otherwise: the bisect trusts the promise (documented).
    events = [{"eventType": "a", "timestamp": "2026-11-18T11:00:00Z"},
              {"eventType": "a", "timestamp": "2026-11-01T11:00:00Z"}]
    query = parse('xEvent[eventType = "a" and timestamp occurs <= 1 days before now]'
                  '.count() > 0')
    assert query.evaluate_strict({}, events, now=NOW) is True
    assert query.evaluate_strict({}, events[::-1], now=NOW, events_in_order=True) is True


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


def test_a_window_that_starts_at_the_first_wanted_event_keeps_it():
    # The oldest in-window event is the one each query needs: skipping one event too many
    # would lose it.
    events = [{"eventType": "a", "timestamp": "2026-11-10T12:00:00Z"},
              {"eventType": "a", "timestamp": "2026-11-17T13:00:00Z"},
              {"eventType": "b", "timestamp": "2026-11-17T14:00:00Z"},
              {"eventType": "c", "timestamp": "2026-11-17T15:00:00Z"},
              {"eventType": "a", "timestamp": "2026-11-18T11:00:00Z"}]
    chain = parse(f"CHAIN(xEvent, timestamp, {CHAINS[0]})")
    counted = parse('xEvent[eventType = "a" and timestamp occurs <= 1 days before now]'
                    '.count() >= 2')
    for query in (chain, counted, parse(SINGLE)):
        assert query.evaluate_strict({}, events, now=NOW) is True
        assert query.evaluate_strict({}, events, now=NOW, events_in_order=True) is True


def test_a_window_bound_is_inclusive_for_at_most_and_exclusive_for_less_than():
    edge = [{"eventType": "a", "timestamp": "2026-11-17T12:00:00Z"}]  # exactly 1 day ago
    for text, expected in (
            ('xEvent[eventType = "a" and timestamp occurs <= 1 days before now].count() > 0',
             True),
            ('xEvent[eventType = "a" and timestamp occurs < 1 days before now].count() > 0',
             False),
            ('CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "a") WHEN(<= 24 hours before now)])',
             True),
            ('CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "a") WHEN(< 24 hours before now)])',
             False)):
        query = parse(text)
        assert query.evaluate_strict({}, edge, now=NOW) is expected, text
        assert query.evaluate_strict({}, edge, now=NOW, events_in_order=True) is expected, text
