"""The chunked Python evaluator over stored profiles and their events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from audiences.models import MergePolicy
from audiences.pql import parse
from audiences.services.evaluation import evaluate_chunks, evaluate_python
from audiences.services.memberships import membership_apply
from tests.factories import make_definition
from tests.services.profile_data import event, identity, person

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
CHECKOUT = ('CHAIN(xEvent, timestamp, [C0: WHAT(eventType.equals("commerce.checkouts", false)) '
            'WHEN(<= 24 hours before now)])')


@pytest.fixture
def pdg(in_acme_prod):
    return MergePolicy.objects.get(is_default=True)


@pytest.fixture
def none_policy(in_acme_prod):
    return MergePolicy.objects.create(name="Per identity", identity_graph="none")


def test_profile_attributes_are_matched(pdg):
    us, _ = person(policy=pdg, attributes={"homeAddress": {"country": "US"}}, at=NOW)
    person(policy=pdg, attributes={"homeAddress": {"country": "CA"}}, at=NOW)
    person(policy=pdg, attributes={"homeAddress": {"country": "US"}}, at=NOW, excluded=True)
    query = parse('homeAddress.country = "US"')
    assert list(evaluate_python(query=query, merge_policy=pdg, now=NOW)) == [us.pk]


def test_a_stitched_profile_sees_the_events_of_every_identity_in_its_graph(pdg, none_policy):
    email = identity("Email", "a@example.com", at=NOW)
    ecid = identity("ECID", "123", at=NOW, cluster_id=email.cluster_id)
    stitched, _ = person(policy=pdg, attributes={}, at=NOW, identities=[email, ecid])
    by_email, _ = person(policy=none_policy, attributes={}, at=NOW, identities=[email])
    by_ecid, _ = person(policy=none_policy, attributes={}, at=NOW, identities=[ecid])
    event(ecid, event_type="commerce.checkouts", at=NOW - timedelta(hours=2))
    query = parse(CHECKOUT)
    assert list(evaluate_python(query=query, merge_policy=pdg, now=NOW)) == [stitched.pk]
    # Without stitching the event belongs to the ECID profile only.
    assert list(evaluate_python(query=query, merge_policy=none_policy, now=NOW)) == [by_ecid.pk]
    assert by_email.pk not in evaluate_python(query=query, merge_policy=none_policy, now=NOW)


def test_events_outside_the_window_do_not_count(pdg):
    _, (ident,) = person(policy=pdg, attributes={}, at=NOW)
    event(ident, event_type="commerce.checkouts", at=NOW - timedelta(hours=30))
    assert list(evaluate_python(query=parse(CHECKOUT), merge_policy=pdg, now=NOW)) == []


def test_in_segment_reads_current_memberships(pdg):
    definition = make_definition(name="Base")
    inside, _ = person(policy=pdg, attributes={}, at=NOW)
    exited, _ = person(policy=pdg, attributes={}, at=NOW)
    person(policy=pdg, attributes={}, at=NOW)
    membership_apply(definition=definition, results={inside.pk: True, exited.pk: True}, at=NOW,
                     source="batch")
    membership_apply(definition=definition, results={exited.pk: False}, at=NOW, source="batch")
    query = parse(f'inSegment("{definition.pk}")')
    assert list(evaluate_python(query=query, merge_policy=pdg, now=NOW)) == [inside.pk]


def test_it_reads_in_chunks_with_a_fixed_number_of_queries_each(pdg, django_assert_num_queries):
    people = [person(policy=pdg, attributes={"n": n}, at=NOW) for n in range(5)]
    for _, (ident,) in people:
        event(ident, event_type="commerce.checkouts", at=NOW - timedelta(hours=1))
    query = parse(CHECKOUT)
    with django_assert_num_queries(3 * 2):  # 3 chunks of profiles + events; the short one ends
        chunks = list(evaluate_chunks(query=query, merge_policy=pdg, now=NOW, chunk_size=2))
    assert [c.scanned for c in chunks] == [2, 2, 1]
    assert sum(len(c.matched) for c in chunks) == 5


def test_a_profile_only_query_reads_no_events(pdg, django_assert_num_queries):
    for n in range(3):
        person(policy=pdg, attributes={"n": n}, at=NOW)
    with django_assert_num_queries(1):
        list(evaluate_python(query=parse("n > 0"), merge_policy=pdg, now=NOW))


def test_profile_ids_narrow_the_evaluation(pdg):
    a, _ = person(policy=pdg, attributes={"n": 1}, at=NOW)
    b, _ = person(policy=pdg, attributes={"n": 1}, at=NOW)
    assert list(evaluate_python(query=parse("n = 1"), merge_policy=pdg, now=NOW,
                                profile_ids=[b.pk])) == [b.pk]
    assert a.pk != b.pk
