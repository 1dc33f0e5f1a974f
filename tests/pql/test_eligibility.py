"""One test per eligibility rule (aep-reference Part A §4.2-4.4, pql.md §12 and §14 A1)."""

from audiences.eligibility import CURRENT, LEGACY, classify
from audiences.pql import parse

CHECKOUT_TODAY = ('CHAIN(xEvent, timestamp, [C0: WHAT(eventType.equals("commerce.checkouts", '
                  'false)) WHEN(today)])')
CHECKOUT_24H = ('CHAIN(xEvent, timestamp, [C0: WHAT(eventType.equals("commerce.checkouts", '
                'false)) WHEN(<= 24 hours before now)])')


def verdict(text, referenced=None, ruleset=CURRENT):
    return classify(parse(text), referenced, ruleset=ruleset)


def test_profile_only_is_streaming_and_edge():
    v = verdict('homeAddress.country.equals("Canada", false)')
    assert (v.batch, v.streaming, v.edge, v.query_type) == (True, True, True, "profile_only")
    assert "Profile attributes only" in v.reasons["streaming"][0]


def test_single_event_within_24_hours_is_streaming():
    v = verdict(CHECKOUT_TODAY)
    assert v.streaming and v.edge and v.query_type == "single_event"


def test_single_event_with_profile_attributes_is_streaming():
    v = verdict('workAddress.country.equals("Canada", false) and ' + CHECKOUT_TODAY)
    assert v.streaming and v.query_type == "single_event_with_profile"


def test_several_events_in_strict_order_within_24_hours_are_streaming_but_not_edge():
    v = verdict('workAddress.country.equals("US", false) and CHAIN(xEvent, timestamp, '
                '[C0: WHAT(eventType.equals("directMarketing.emailClicked", false)) WHEN(today), '
                'C1: WHAT(eventType.equals("commerce.checkouts", false)) WHEN(today)])')
    assert v.streaming and not v.edge
    assert v.query_type == "multiple_events"
    assert any("sequences" in r for r in v.reasons["edge"])


def test_a_negated_step_is_fine_but_a_fully_negated_event_is_not():
    ok = verdict('CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "commerce.productListAdds") '
                 'WHEN(<= 1 hours before now), C1: !WHAT(eventType = "commerce.checkouts")])')
    assert ok.streaming
    bad = verdict("not(" + CHECKOUT_TODAY + ")")
    assert not bad.streaming and bad.query_type == "negated_events"
    assert "negated" in bad.reasons["streaming"][0]
    assert bad.suggestions["streaming"]


def test_a_window_over_24_hours_goes_to_batch_with_a_suggestion():
    v = verdict(CHECKOUT_TODAY.replace("WHEN(today)", "WHEN(<= 3 days before now)"))
    assert v.batch and not v.streaming and not v.edge
    assert "more than 24 hours" in v.reasons["streaming"][0]
    assert "24 hours or less" in v.suggestions["streaming"][0]


def test_an_event_with_no_window_goes_to_batch():
    v = verdict('CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "commerce.checkouts")])')
    assert not v.streaming
    assert "no time window" in v.reasons["streaming"][0]


def test_the_legacy_ruleset_allowed_single_events_without_a_window():
    text = 'select var1 from xEvent where var1.eventType = "commerce.checkouts"'
    assert verdict(text, ruleset=LEGACY).streaming
    assert not verdict(text).streaming


def test_independent_event_conditions_go_to_batch():
    v = verdict(CHECKOUT_TODAY + " and " + CHECKOUT_TODAY.replace("checkouts", "productViews"))
    assert not v.streaming and v.query_type == "independent_events"
    assert "inSegment" in v.suggestions["streaming"][0]


def test_aggregations_go_to_batch():
    v = verdict('xEvent[eventType = "commerce.checkouts"].count() > 3')
    assert not v.streaming and v.query_type == "aggregation"


def test_segment_of_segments_is_streaming_and_edge():
    v = verdict('inSegment("a") and inSegment("b")')
    assert v.streaming and v.edge and v.query_type == "segment_of_segments"


def test_insegment_of_a_profile_audience_with_an_event_stays_streaming():
    v = verdict('inSegment("ca") and ' + CHECKOUT_24H, {"ca": {"profile_only": True}})
    assert v.streaming and v.edge


def test_insegment_of_a_streaming_event_audience_with_an_event_is_streaming_not_edge():
    facts = {"recent": {"profile_only": False, "streaming": True}}
    v = verdict('inSegment("recent") and ' + CHECKOUT_24H, facts)
    assert v.streaming and not v.edge


def test_insegment_of_a_batch_event_audience_with_an_event_goes_to_batch():
    v = verdict('inSegment("abandons") and ' + CHECKOUT_24H,
                {"abandons": {"profile_only": False, "batch": True}})
    assert not v.streaming
    assert "batch audience built on events" in v.reasons["streaming"][0]


def test_insegment_of_an_unknown_audience_with_an_event_is_explained():
    v = verdict('inSegment("nope") and ' + CHECKOUT_24H)
    assert not v.streaming and "does not know" in v.reasons["streaming"][0]


def test_audience_manager_segments_go_to_batch():
    v = verdict('segmentMembership.get("AAMSegments").get("10447416").status in '
                '["realized", "existing"]')
    assert not v.streaming and "Audience Manager" in v.reasons["streaming"][0]


def test_every_verdict_explains_every_method():
    v = verdict(CHECKOUT_TODAY)
    assert set(v.reasons) == {"batch", "streaming", "edge"}
    assert v.to_dict()["queryType"] == "single_event"
