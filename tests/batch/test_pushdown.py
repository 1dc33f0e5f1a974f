"""Hand-written definitions of every supported shape compile to SQL with no Python residual,
and agree with the Python evaluator on data built to hit their edges."""

from __future__ import annotations

from datetime import timedelta

import pytest

from audiences.pql import parse
from audiences.services.batch_sql import query_evaluate
from audiences.services.evaluation import evaluate_python
from tests.factories import default_policy, make_definition
from tests.pql.strategies import NOW
from tests.services import profile_data

pytestmark = pytest.mark.django_db

PUSHED_DOWN = [
    'homeAddress.countryISO = "US"',
    'homeAddress.countryISO != "US"',
    'not (homeAddress.countryISO = "US")',
    "person.age > 30",
    "person.age <= 30.5",
    'person.age = "40"',
    "vip = true",
    'vip = "true"',
    "vip",
    'loyalty.tier in ["gold", "silver"]',
    'loyalty.tier notIn ["gold"]',
    "loyalty.tier.isNull()",
    "loyalty.tier.isNotNull()",
    'person.name.firstName.startsWith("Jo")',
    'person.name.firstName.endsWith("hn")',
    'person.name.firstName.contains("oh")',
    'person.name.firstName.equals("john", false)',
    'person.name.firstName.doesNotStartWith("X")',
    "person.age + 5 > 40",
    "person.age / 0 > 1",
    'CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "commerce.checkouts") '
    "WHEN(<= 7 days before now)])",
    'CHAIN(xEvent, timestamp, [C0: WHAT(eventType.equals("commerce.checkouts", false)) '
    "COUNT(2)])",
    'CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "web.webpagedetails.pageViews"), '
    'C1: WHAT(eventType = "commerce.checkouts") WHEN(today)])',
    'xEvent[eventType = "commerce.checkouts"].count() >= 2',
    'xEvent[eventType = "commerce.checkouts" and timestamp occurs last month].count() = 0',
    'select X from xEvent where X.eventType = "commerce.checkouts" and '
    "X.timestamp occurs <= 24 hours before now",
    'xEvent[eventType = "commerce.checkouts"].sum(commerce.order.priceTotal) > 100',
    'homeAddress.countryISO = "US" or person.age > 60',
]


@pytest.fixture
def population(in_acme_prod):
    policy = default_policy()
    people = [
        {"homeAddress": {"countryISO": "US"}, "person": {"age": 41, "name": {"firstName": "John"}},
         "vip": True, "loyalty": {"tier": "gold"}},
        {"homeAddress": {"countryISO": "CA"}, "person": {"age": "40"}, "vip": "true"},
        {"person": {"age": 30.5, "name": {"firstName": "JOHN"}}, "loyalty": {"tier": None}},
        {"person": {"age": True}, "vip": False, "loyalty": {"tier": "silver"}},
        {"homeAddress": {"countryISO": 5}, "person": {"name": {"firstName": "Jöhn"}}},
        {},
    ]
    for n, attributes in enumerate(people):
        _, ids = profile_data.person(policy=policy, attributes=attributes, at=NOW)
        for k in range(n):
            profile_data.event(ids[0], event_type="commerce.checkouts",
                               at=NOW - timedelta(hours=10 * k + 1),
                               commerce={"order": {"priceTotal": 60 + k}})
        profile_data.event(ids[0], event_type="web.webpagedetails.pageViews",
                           at=NOW - timedelta(hours=30))
    return policy


@pytest.mark.parametrize("expression", PUSHED_DOWN)
def test_it_pushes_the_definition_down_and_agrees(population, expression):
    query = parse(expression)
    truth = set(evaluate_python(query=query, merge_policy=population, now=NOW))
    result = query_evaluate(query=query, merge_policy=population, now=NOW)
    assert set(result.profile_ids) == truth
    assert result.fallbacks == ()


def test_it_says_which_constructs_fell_back(population):
    query = parse('person.name.firstName matches "^J"')
    result = query_evaluate(query=query, merge_policy=population, now=NOW)
    assert result.evaluator == "sql+python"
    assert result.fallbacks
    assert set(result.profile_ids) == set(evaluate_python(query=query, merge_policy=population,
                                                          now=NOW))


def test_in_segment_reads_current_memberships(population):
    from audiences.models import Membership, Profile

    target = make_definition(name="target")
    profile = Profile.objects.first()
    Membership.objects.create(definition=target, profile=profile, status="existing",
                              last_qualification_time=NOW, source="batch", updated_at=NOW)
    query = parse(f'inSegment("{target.pk}") and not inSegment("{target.pk}x")')
    result = query_evaluate(query=query, merge_policy=population, now=NOW)
    assert set(result.profile_ids) == {profile.pk}
    assert result.evaluator == "sql"
