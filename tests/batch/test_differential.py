"""The SQL compiler agrees with the Python evaluator on every profile (hypothesis).

Each example builds a handful of profiles with events and segment memberships from the PQL
strategies' data generators, then checks for several generated definitions that
1. the compiled pair brackets the truth: sure ⊆ Python's answer ⊆ maybe, and
2. the full batch evaluation (SQL plus the Python residual) equals Python's answer.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiences.models import Membership, MergePolicy, Status
from audiences.pql import Query, parse
from audiences.services.batch_sql import FALSE, TRUE, plan_for, profiles_for, query_evaluate
from audiences.services.evaluation import evaluate_python
from tests.factories import default_policy, make_definition
from tests.pql import strategies as S
from tests.services import profile_data

pytestmark = pytest.mark.django_db

population = st.lists(st.tuples(S.profiles(), S.events(max_size=5), S.segment_sets),
                      min_size=1, max_size=6)


def _ids(qs, condition) -> set[int]:
    if condition is FALSE:
        return set()
    return set((qs if condition is TRUE else qs.filter(condition)).values_list("pk", flat=True))


def _build(people, policy: MergePolicy, segments: dict[str, object]) -> None:
    at = S.NOW
    for attributes, events, member_of in people:
        profile, identities = profile_data.person(policy=policy, attributes=attributes, at=at)
        for event in events:
            extra = {k: v for k, v in event.items() if k not in ("_id", "timestamp",
                                                                  "eventType")}
            profile_data.event(identities[0], event_type=event["eventType"],
                               at=datetime.fromisoformat(event["timestamp"]), **extra)
        for name in member_of:
            Membership.objects.create(definition=segments[name], profile=profile,
                                      status=Status.REALIZED, last_qualification_time=at,
                                      source="batch", updated_at=at)


def _with_segment_ids(tree, segments) -> Query:
    text = Query(tree).to_pql()
    for name, definition in segments.items():
        text = text.replace(f'"{name}"', f'"{definition.pk}"')
    return parse(text)


def check(query: Query, policy: MergePolicy) -> str:
    truth = set(evaluate_python(query=query, merge_policy=policy, now=S.NOW))
    plan = plan_for(query=query, merge_policy=policy, now=S.NOW)
    rows = profiles_for(policy).annotate(**plan.annotations)
    sure, maybe = _ids(rows, plan.tri.sure), _ids(rows, plan.tri.maybe)
    assert sure <= truth <= maybe, (query.to_pql(), sure, truth, maybe)
    result = query_evaluate(query=query, merge_policy=policy, now=S.NOW)
    assert set(result.profile_ids) == truth, query.to_pql()
    return result.evaluator


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(people=population, trees=st.lists(S.queries(), min_size=3, max_size=3))
def test_sql_matches_python_for_generated_definitions(in_acme_prod, people, trees):
    with transaction.atomic():
        policy = default_policy()
        segments = {name: make_definition(name=f"segment {name}") for name in S.SEGMENT_IDS}
        _build(people, policy, segments)
        for tree in trees:
            check(_with_segment_ids(tree.body if False else tree, segments), policy)
        transaction.set_rollback(True)
