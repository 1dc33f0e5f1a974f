"""The demo's generator and its audiences, without a database: deterministic, realistic, and
every seeded definition is valid PQL eligible for the methods it asks for."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from audiences.eligibility import classify
from audiences.pql import parse
from audiences.services import demo_data
from audiences.services.demo import AUDIENCES

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def data():
    return demo_data.generate(profiles=400, days=30, now=NOW)


def test_the_same_seed_and_instant_give_byte_identical_records(data):
    again = demo_data.generate(profiles=400, days=30, now=NOW)
    assert json.dumps(again.records, sort_keys=True) == json.dumps(data.records, sort_keys=True)


def test_there_are_four_datasets_with_overlapping_people(data):
    crm, loyalty = data.records[demo_data.CRM], data.records[demo_data.LOYALTY]
    assert len(crm) == 400
    assert 100 < len(loyalty) < 300  # about half the people are loyalty members
    crm_emails = {r["identityMap"]["Email"][0]["id"] for r in crm}
    loyalty_emails = {r["identityMap"]["Email"][0]["id"] for r in loyalty}
    assert loyalty_emails <= crm_emails  # the Email identity stitches the two datasets
    # Some loyalty records disagree with the CRM, so merge policies visibly matter.
    crm_by_email = {r["identityMap"]["Email"][0]["id"]: r for r in crm}
    differing = [r for r in loyalty
                 if r.get("homeAddress") and r["homeAddress"] != crm_by_email[
                     r["identityMap"]["Email"][0]["id"]].get("homeAddress")]
    assert differing


def test_events_cover_thirty_days_with_the_documented_types(data):
    events = data.records[demo_data.WEB] + data.records[demo_data.EMAIL]
    types = {e["eventType"] for e in events}
    assert {"web.webpagedetails.pageViews", "commerce.productViews", "commerce.productListAdds",
            "commerce.checkouts", "commerce.abandons", "directMarketing.emailOpened",
            "directMarketing.emailClicked"} <= types
    stamps = sorted(datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
                    for e in events)
    assert stamps[-1] <= NOW
    assert (NOW - stamps[0]).days >= 28
    assert len({e["_id"] for e in events}) == len(events)
    checkouts = [e for e in events if e["eventType"] == "commerce.checkouts"]
    assert checkouts and all(e["commerce"]["order"]["priceTotal"] > 0 for e in checkouts)


def test_every_seeded_audience_parses_and_is_eligible_for_what_it_asks():
    ids = {a.key: f"00000000-0000-0000-0000-{n:012d}" for n, a in enumerate(AUDIENCES)}
    facts: dict[str, dict] = {}
    for audience in AUDIENCES:
        expression = audience.expression
        for key, value in ids.items():
            expression = expression.replace("{" + key + "}", value)
        query = parse(expression)
        assert parse(query.to_pql()) == query
        result = classify(query, referenced=facts)
        for method in audience.methods:
            assert getattr(result, method), (audience.name, method, result.reasons)
        facts[ids[audience.key]] = {"batch": True, "streaming": result.streaming,
                                    "edge": result.edge,
                                    "profile_only": not query.references.uses_events}
    names = {a.name for a in AUDIENCES}
    assert {"California Residents", "Recent checkouts", "People in the USA",
            "People who are on their homepage", "People who are NOT on their homepage",
            "Recent abandons"} <= names
    assert len(AUDIENCES) >= 18
    methods = {m for a in AUDIENCES for m in a.methods}
    assert methods == {"batch", "streaming", "edge"}
