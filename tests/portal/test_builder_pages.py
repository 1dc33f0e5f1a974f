"""Segment Builder through the Django client: canvas <-> PQL sync, live validation, methods,
saving; and the canvas model on its own."""

from __future__ import annotations

import re

import pytest

from audiences.models import MergePolicy, SegmentDefinition
from audiences.pql import parse
from audiences.web import canvas as C
from tests.portal.audience_data import audience

pytestmark = pytest.mark.django_db

CHECKOUT_24H = ('CHAIN(xEvent, timestamp, [C0: WHAT(eventType.equals("commerce.checkouts", '
                'false)) WHEN(<= 24 hours before now)])')


def sync(client, **data):
    return client.post("/audiences/builder/sync/", data)


def checkout_rule(amount="24", unit="hours"):
    return {"c0_mode": "include", "c0_join": "and", "c0_r0_kind": "event",
            "c0_r0_count_op": "at_least", "c0_r0_n": "1",
            "c0_r0_s0_event_type": "commerce.checkouts", "c0_r0_s0_time": "last",
            "c0_r0_s0_amount": amount, "c0_r0_s0_unit": unit}


@pytest.mark.parametrize("text", [
    CHECKOUT_24H,
    'homeAddress.countryISO = "US" and not (person.name.firstName.startsWith("A") '
    'or loyalty.points > 3)',
    'CHAIN(xEvent, timestamp, [C0: WHAT(eventType.equals("a", false)) WHEN(today), '
    'C1: WHAT(eventType.equals("b", false)) WHEN(<= 2 hours after C0)])',
    'xEvent[eventType = "x" and timestamp occurs <= 3 days before now].count() <= 2',
    'person.birthDate occurs between date(1980, 1, 1) and date(1990, 12, 31) and x.isNull()',
    'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 30 days before now]'
    '.sum(commerce.order.priceTotal) >= 100',
    '(a = 1 or b = 2) and c = 3 and not (d = 4 and e = "x")',
])
def test_the_canvas_redraws_pql_it_understands_exactly(text):
    query = parse(text)
    canvas = C.from_pql(query)
    assert canvas is not None
    assert parse(C.to_pql(canvas)) == query


@pytest.mark.parametrize("text", ["xEvent.count() > 3",
                                  'select X from xEvent where X.eventType = "a"',
                                  "a.b + 1 > 3"])
def test_pql_the_canvas_cannot_draw_is_left_to_the_code_view(text):
    assert C.from_pql(parse(text)) is None


def test_adding_an_event_from_the_fields_pane_writes_pql(bob, acme_prod):
    response = sync(bob.web(), source="canvas", c0_mode="include", c0_join="and",
                    action="add_event:-1:commerce.checkouts")
    body = response.content.decode()
    assert 'name="c0_r0_s0_event_type"' in body
    assert "commerce.checkouts" in body and 'id="pql-code"' in body


def test_checkout_in_24_hours_qualifies_for_streaming_and_3_days_does_not(bob, acme_prod):
    client = bob.web()
    fast = sync(client, source="canvas", method="streaming", **checkout_rule())
    methods = {m.key: m for m in fast.context["methods"]}
    assert methods["streaming"].allowed and fast.context["method"] == "streaming"
    assert fast.context["expression"] == CHECKOUT_24H
    slow = sync(client, source="canvas", method="streaming", **checkout_rule("3", "days"))
    methods = {m.key: m for m in slow.context["methods"]}
    assert not methods["streaming"].allowed and slow.context["method"] == "batch"
    assert any("more than 24 hours" in r for r in methods["streaming"].reasons)
    radio = re.search(r'<input type="radio"[^>]*value="streaming"[^>]*>', slow.content.decode())
    assert radio and "disabled" in radio.group(0)


def test_an_aggregation_rule_writes_a_sum_over_matching_events(bob, acme_prod):
    rule = {**checkout_rule("30", "days"), "c0_r0_count_op": "sum", "c0_r0_n": "250",
            "c0_r0_agg_field": "commerce.order.priceTotal", "c0_r0_agg_cmp": ">"}
    response = sync(bob.web(), source="canvas", **rule)
    assert response.context["expression"] == (
        'xEvent[eventType = "commerce.checkouts" and timestamp occurs <= 30 days before now]'
        '.sum(commerce.order.priceTotal) > 250')
    assert response.context["verdict"].ok
    methods = {m.key: m for m in response.context["methods"]}
    assert not methods["streaming"].eligible  # aggregations are batch only


def test_an_unknown_method_is_treated_as_batch(bob, acme_prod):
    response = sync(bob.web(), source="code", expression="a = 1", method="teleport")
    assert response.status_code == 200 and response.context["method"] == "batch"


def test_typing_bad_pql_reports_line_and_column(bob, acme_prod):
    response = sync(bob.web(), source="code", expression='a = "x" and\n  b = ')
    body = response.content.decode()
    assert "Syntax error at line 2, column" in body
    assert 'id="pql-code"' not in body  # the text being typed is never replaced


def test_typing_pql_redraws_the_canvas(bob, acme_prod):
    response = sync(bob.web(), source="code", expression='loyalty.tier = "gold"')
    assert response.context["drawable"]
    assert 'value="loyalty.tier"' in response.content.decode()


def test_a_locked_canvas_never_overwrites_the_pql(bob, acme_prod):
    response = sync(bob.web(), source="canvas", canvas_locked="1", expression="xEvent.count() > 3",
                    action="add_attr:-1:loyalty.tier:string")
    assert response.context["expression"] == "xEvent.count() > 3"
    assert not response.context["drawable"]


def test_streaming_needs_the_active_on_edge_merge_policy(bob, acme_prod, in_acme_prod):
    other = MergePolicy.objects.create(name="Not on edge", identity_graph="none")
    response = sync(bob.web(), source="canvas", method="streaming", merge_policy=str(other.pk),
                    **checkout_rule())
    methods = {m.key: m for m in response.context["methods"]}
    assert methods["streaming"].eligible and not methods["streaming"].allowed
    assert any("active-on-edge" in r for r in methods["streaming"].reasons)


def test_save_as_draft_then_publish(bob, acme_prod, in_acme_prod):
    client = bob.web()
    response = client.post("/audiences/new/", {
        "name": "Recent checkouts", "description": "Checked out today",
        "expression": CHECKOUT_24H, "method": "streaming", "intent": "draft"})
    assert response.status_code == 302
    saved = SegmentDefinition.objects.get(name="Recent checkouts")
    assert saved.lifecycle_state == "draft" and saved.evaluation_continuous
    assert saved.created_in_builder and saved.created_by.username == "bob"
    client.post(f"/audiences/{saved.pk}/edit/", {
        "name": "Recent checkouts", "expression": CHECKOUT_24H, "method": "streaming",
        "intent": "publish"})
    saved.refresh_from_db()
    assert saved.lifecycle_state == "published"


def test_saving_revalidates_on_the_server(bob, acme_prod, in_acme_prod):
    response = bob.web().post("/audiences/new/", {"name": "Broken", "expression": "a = ",
                                                  "method": "batch", "intent": "draft"})
    assert response.status_code == 400
    assert "Invalid PQL at line 1" in response.content.decode()
    assert not SegmentDefinition.objects.filter(name="Broken").exists()


def test_edit_opens_with_the_canvas_drawn(bob, acme_prod):
    target = audience(acme_prod, "Gold", expression='loyalty.tier = "gold"')
    response = bob.web().get(f"/audiences/{target.pk}/edit/")
    assert response.status_code == 200 and response.context["drawable"]
    assert "loyalty.tier" in response.content.decode()


def test_refresh_estimate_reports_matching_profiles(bob, acme_prod, in_acme_prod,
                                                    django_capture_on_commit_callbacks):
    from tests.factories import make_profile

    make_profile(attributes={"loyalty": {"tier": "gold"}})
    make_profile(attributes={"loyalty": {"tier": "silver"}})
    client = bob.web()
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post("/audiences/builder/estimate/",
                              {"expression": 'loyalty.tier = "gold"'})
    preview = started.context["preview"]
    done = client.get(f"/audiences/builder/estimate/{preview.pk}/")
    assert done.context["done"] and done.context["preview"].estimate["estimatedSize"] == 1
    assert len(done.context["results"]) == 1


def test_viewers_cannot_open_the_builder_or_validate(victor, acme_prod):
    client = victor.web()
    assert client.get("/audiences/new/").status_code == 403
    assert sync(client, source="code", expression="a = 1").status_code == 403


def test_the_builder_cannot_reach_another_organizations_audiences(charlie, acme_prod):
    secret = audience(acme_prod, "Acme secret")
    client = charlie.web()
    response = sync(client, source="code", expression=f'inSegment("{secret.pk}")')
    assert "do not exist in this sandbox" in response.content.decode()
    assert "Acme secret" not in client.get("/audiences/new/").content.decode()
    assert client.get(f"/audiences/{secret.pk}/edit/").status_code == 404
