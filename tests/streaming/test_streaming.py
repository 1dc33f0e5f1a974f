"""Streaming segmentation: the four eligible query types, lapses, inSegment chains, isolation.

The clock is an argument (`now`), so a lapse is tested by calling the sweep later, not by
sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from audiences.models import Membership, MembershipChange, MergePolicy, SegmentJob, Source
from audiences.services.streaming import streaming_evaluate, streaming_lapse_sweep
from tests.factories import make_definition
from tests.services.profile_data import event, person

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
CHECKOUT_TODAY = ('CHAIN(xEvent, timestamp, [C0: WHAT(eventType.equals("commerce.checkouts", '
                  'false)) WHEN(today)])')
CHECKOUT_3H = ('CHAIN(xEvent, timestamp, [C0: WHAT(eventType.equals("commerce.checkouts", '
               'false)) WHEN(<= 3 hours before now)])')
PROFILE_ONLY = 'homeAddress.country.equals("Canada", false)'
EVENT_WITH_PROFILE = f'workAddress.country.equals("Canada", false) and {CHECKOUT_TODAY}'
MULTIPLE = ('workAddress.country.equals("US", false) and CHAIN(xEvent, timestamp, '
            '[C0: WHAT(eventType.equals("directMarketing.emailClicked", false)) WHEN(today), '
            'C1: WHAT(eventType.equals("commerce.checkouts", false)) WHEN(today)])')


@pytest.fixture
def policy(in_acme_prod):
    return MergePolicy.objects.get(is_default=True)


def streaming(name: str, expression: str, **fields):
    return make_definition(name=name, expression=expression, evaluation_continuous=True,
                           **fields)


def status(definition, profile) -> str | None:
    row = Membership.objects.filter(definition=definition, profile=profile).first()
    return row.status if row else None


def ingest(sandbox, profile, *, types=(), paths=(), at=NOW):
    return streaming_evaluate(sandbox=sandbox, profile_ids=[profile.pk], attribute_paths=paths,
                              event_types=types, now=at)


def test_single_event_qualifies_at_once_and_exits_when_the_day_ends(policy, acme_prod):
    recent = streaming("Recent checkouts", CHECKOUT_TODAY)
    profile, (ident,) = person(policy=policy, attributes={}, at=NOW)
    event(ident, event_type="commerce.checkouts", at=NOW - timedelta(minutes=1))
    result = ingest(acme_prod, profile, types=["commerce.checkouts"])
    assert result.transitions == 1
    assert status(recent, profile) == "realized"
    row = Membership.objects.get(definition=recent, profile=profile)
    assert row.recheck_at == datetime(2026, 11, 3, tzinfo=UTC)
    # Nothing new arrives; the sweep at midnight exits the profile.
    assert streaming_lapse_sweep(now=NOW + timedelta(hours=6)).transitions == 0
    assert status(recent, profile) == "realized"
    assert streaming_lapse_sweep(now=datetime(2026, 11, 3, 0, 0, 1, tzinfo=UTC)).transitions == 1
    assert status(recent, profile) == "exited"
    change = MembershipChange.objects.filter(definition=recent).order_by("pk").last()
    assert (change.new_status, change.source) == ("exited", Source.STREAMING)


def test_a_rolling_window_exits_exactly_when_it_lapses(policy, acme_prod):
    recent = streaming("Checkout in the last 3 hours", CHECKOUT_3H)
    profile, (ident,) = person(policy=policy, attributes={}, at=NOW)
    bought = NOW - timedelta(minutes=30)
    event(ident, event_type="commerce.checkouts", at=bought)
    ingest(acme_prod, profile, types=["commerce.checkouts"])
    lapse = Membership.objects.get(definition=recent, profile=profile).recheck_at
    assert lapse is not None and bought + timedelta(hours=3) - timedelta(seconds=1) <= lapse
    assert lapse <= bought + timedelta(hours=3, seconds=1)
    streaming_lapse_sweep(now=lapse - timedelta(seconds=2))
    assert status(recent, profile) == "realized"
    streaming_lapse_sweep(now=lapse + timedelta(seconds=1))
    assert status(recent, profile) == "exited"
    assert Membership.objects.get(definition=recent, profile=profile).recheck_at is None


def test_profile_only_definitions_follow_attribute_changes(policy, acme_prod):
    canada = streaming("Canadians", PROFILE_ONLY)
    profile, _ = person(policy=policy, attributes={"homeAddress": {"country": "canada"}}, at=NOW)
    ingest(acme_prod, profile, paths=["homeAddress.country"])
    assert status(canada, profile) == "realized"
    profile.attributes = {"homeAddress": {"country": "France"}}
    profile.save()
    ingest(acme_prod, profile, paths=["homeAddress"], at=NOW + timedelta(minutes=5))
    assert status(canada, profile) == "exited"


def test_single_event_with_a_profile_attribute_needs_both(policy, acme_prod):
    definition = streaming("Canadian buyers", EVENT_WITH_PROFILE)
    canadian, (c_ident,) = person(policy=policy, attributes={"workAddress": {"country": "Canada"}},
                                  at=NOW)
    american, (a_ident,) = person(policy=policy, attributes={"workAddress": {"country": "US"}},
                                  at=NOW)
    for ident in (c_ident, a_ident):
        event(ident, event_type="commerce.checkouts", at=NOW - timedelta(minutes=2))
    ingest(acme_prod, canadian, types=["commerce.checkouts"])
    ingest(acme_prod, american, types=["commerce.checkouts"])
    assert status(definition, canadian) == "realized"
    assert status(definition, american) is None


def test_multiple_events_qualify_only_in_order(policy, acme_prod):
    definition = streaming("Clicked then bought", MULTIPLE)
    in_order, (first,) = person(policy=policy, attributes={"workAddress": {"country": "US"}},
                                at=NOW)
    reversed_, (second,) = person(policy=policy, attributes={"workAddress": {"country": "US"}},
                                  at=NOW)
    event(first, event_type="directMarketing.emailClicked", at=NOW - timedelta(hours=2))
    event(second, event_type="commerce.checkouts", at=NOW - timedelta(hours=2))
    ingest(acme_prod, in_order, types=["directMarketing.emailClicked"],
           at=NOW - timedelta(hours=2))
    assert status(definition, in_order) is None  # the checkout has not happened yet
    event(first, event_type="commerce.checkouts", at=NOW - timedelta(hours=1))
    event(second, event_type="directMarketing.emailClicked", at=NOW - timedelta(hours=1))
    ingest(acme_prod, in_order, types=["commerce.checkouts"])
    ingest(acme_prod, reversed_, types=["directMarketing.emailClicked"])
    assert status(definition, in_order) == "realized"
    assert status(definition, reversed_) is None


def test_event_types_are_matched_without_case(policy, acme_prod):
    recent = streaming("Recent checkouts", CHECKOUT_TODAY)
    profile, (ident,) = person(policy=policy, attributes={}, at=NOW)
    event(ident, event_type="Commerce.Checkouts", at=NOW - timedelta(minutes=1))
    ingest(acme_prod, profile, types=["Commerce.Checkouts"])
    assert status(recent, profile) == "realized"


def test_an_event_no_definition_mentions_costs_no_evaluation(policy, acme_prod):
    streaming("Recent checkouts", CHECKOUT_TODAY)
    profile, (ident,) = person(policy=policy, attributes={}, at=NOW)
    event(ident, event_type="web.webpagedetails.pageViews", at=NOW)
    result = ingest(acme_prod, profile, types=["web.webpagedetails.pageViews"])
    assert (result.evaluations, result.transitions) == (0, 0)


def test_definitions_that_are_not_streaming_are_untouched(policy, acme_prod):
    batch_only = make_definition(name="Batch checkouts", expression=CHECKOUT_TODAY)
    draft = streaming("Draft", CHECKOUT_TODAY, lifecycle_state="draft")
    profile, (ident,) = person(policy=policy, attributes={}, at=NOW)
    event(ident, event_type="commerce.checkouts", at=NOW)
    ingest(acme_prod, profile, types=["commerce.checkouts"])
    assert Membership.objects.filter(definition__in=[batch_only, draft]).count() == 0


def test_in_segment_chains_propagate_both_ways_transitively(policy, acme_prod):
    buyers = streaming("Recent checkouts", CHECKOUT_TODAY)
    canadians = streaming("Canadians", PROFILE_ONLY)
    both = streaming("Canadian recent buyers",
                     f'inSegment("{buyers.pk}") and inSegment("{canadians.pk}")')
    vip = streaming("VIP", f'inSegment("{both.pk}")')
    profile, (ident,) = person(policy=policy,
                               attributes={"homeAddress": {"country": "Canada"}}, at=NOW)
    ingest(acme_prod, profile, paths=["homeAddress.country"])
    assert status(canadians, profile) == "realized"
    assert status(both, profile) is None
    event(ident, event_type="commerce.checkouts", at=NOW - timedelta(minutes=1))
    ingest(acme_prod, profile, types=["commerce.checkouts"])
    assert [status(d, profile) for d in (buyers, both, vip)] == ["realized"] * 3
    # The day ends: the base exits, and so does everything built on it, in one sweep.
    streaming_lapse_sweep(now=datetime(2026, 11, 3, 0, 0, 1, tzinfo=UTC))
    assert [status(d, profile) for d in (buyers, both, vip)] == ["exited"] * 3
    assert status(canadians, profile) == "realized"


def test_a_cycle_of_in_segment_references_terminates(policy, acme_prod):
    a = streaming("A", PROFILE_ONLY)
    b = streaming("B", f'inSegment("{a.pk}")')
    a.expression = f'{PROFILE_ONLY} or inSegment("{b.pk}")'
    a.save()
    profile, _ = person(policy=policy, attributes={"homeAddress": {"country": "Canada"}}, at=NOW)
    result = ingest(acme_prod, profile, paths=["homeAddress.country"])
    assert status(a, profile) == "realized" and status(b, profile) == "realized"
    assert result.transitions == 2


def test_replaying_a_change_never_double_counts(policy, acme_prod):
    recent = streaming("Recent checkouts", CHECKOUT_TODAY)
    profile, (ident,) = person(policy=policy, attributes={}, at=NOW)
    event(ident, event_type="commerce.checkouts", at=NOW)
    for _ in range(3):  # at-least-once delivery: the same task three times
        ingest(acme_prod, profile, types=["commerce.checkouts"])
    recent.refresh_from_db()
    assert MembershipChange.objects.filter(definition=recent).count() == 1
    assert recent.realized_count == 1


def test_another_sandbox_is_never_evaluated(policy, acme_prod, acme_dev):
    streaming("Recent checkouts", CHECKOUT_TODAY)
    profile, (ident,) = person(policy=policy, attributes={}, at=NOW)
    event(ident, event_type="commerce.checkouts", at=NOW)
    result = streaming_evaluate(sandbox=acme_dev, profile_ids=[profile.pk], attribute_paths=[],
                                event_types=["commerce.checkouts"], now=NOW)
    assert result.transitions == 0


def test_a_batch_membership_change_reaches_streaming_dependents(policy, acme_prod,
                                                                django_capture_on_commit_callbacks):
    from audiences.services.memberships import membership_apply

    loyal = make_definition(name="Loyal (batch)", expression='loyalty.tier = "gold"')
    loyal_buyers = streaming("Loyal recent buyers",
                             f'inSegment("{loyal.pk}") and {CHECKOUT_TODAY}')
    profile, (ident,) = person(policy=policy, attributes={}, at=NOW)
    event(ident, event_type="commerce.checkouts", at=NOW - timedelta(minutes=5))
    ingest(acme_prod, profile, types=["commerce.checkouts"])
    assert status(loyal_buyers, profile) is None
    with django_capture_on_commit_callbacks(execute=True):
        membership_apply(definition=loyal, results={profile.pk: True}, at=NOW,
                         source=Source.BATCH)
    assert status(loyal_buyers, profile) == "realized"


def test_each_profile_is_evaluated_only_against_what_its_own_events_touch(policy, acme_prod):
    streaming("Recent checkouts", CHECKOUT_TODAY)
    buyer, (b_ident,) = person(policy=policy, attributes={}, at=NOW)
    browser, (v_ident,) = person(policy=policy, attributes={}, at=NOW)
    bought = event(b_ident, event_type="commerce.checkouts", at=NOW)
    viewed = event(v_ident, event_type="web.webpagedetails.pageViews", at=NOW)
    bought.payload["_id"], viewed.payload["_id"] = bought.event_id, viewed.event_id
    bought.save(), viewed.save()
    # One request carried both events: only the buyer is evaluated for the checkout audience.
    result = streaming_evaluate(sandbox=acme_prod, profile_ids=[buyer.pk, browser.pk],
                                attribute_paths=[], now=NOW,
                                event_types=["commerce.checkouts",
                                             "web.webpagedetails.pageViews"],
                                event_ids=[bought.event_id, viewed.event_id])
    assert (result.evaluations, result.transitions) == (1, 1)


def test_a_batch_job_evaluates_the_dependents_it_holds_itself(policy, acme_prod,
                                                             django_capture_on_commit_callbacks):
    from audiences.models import MembershipChange
    from audiences.services.batch import segment_job_create, segment_job_run

    loyal = make_definition(name="Loyal (batch)", expression='loyalty.tier = "gold"')
    loyal_buyers = streaming("Loyal recent buyers",
                             f'inSegment("{loyal.pk}") and {CHECKOUT_TODAY}')
    loyal_buyers.dependencies.add(loyal)  # as saving it through the API records
    profile, (ident,) = person(policy=policy, attributes={"loyalty": {"tier": "gold"}}, at=NOW)
    event(ident, event_type="commerce.checkouts", at=NOW - timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        job = segment_job_create(segment_ids="*", source="test", now=NOW, enqueue=False)
        segment_job_run(job_id=job.pk, now=NOW, inline=True)
    assert status(loyal, profile) == "realized"
    assert status(loyal_buyers, profile) == "realized"
    # Once, by the job after its base: no second evaluation through streaming propagation.
    assert list(MembershipChange.objects.filter(definition=loyal_buyers).values_list(
        "source", "new_status")) == [("batch", "realized")]


def test_a_dependent_the_job_already_ran_is_still_re_evaluated(policy, acme_prod,
                                                              django_capture_on_commit_callbacks):
    from audiences.models import SegmentJobRun
    from audiences.services.batch import segment_job_create, segment_job_run_definition

    loyal = make_definition(name="Loyal (batch)", expression='loyalty.tier = "gold"')
    loyal_buyers = streaming("Loyal recent buyers",
                             f'inSegment("{loyal.pk}") and {CHECKOUT_TODAY}')
    profile, (ident,) = person(policy=policy, attributes={"loyalty": {"tier": "gold"}}, at=NOW)
    event(ident, event_type="commerce.checkouts", at=NOW - timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        job = segment_job_create(segment_ids="*", source="test", now=NOW, enqueue=False)
        SegmentJob.objects.filter(pk=job.pk).update(status=SegmentJob.Status.PROCESSING)
        # Out of dependency order (no dependency recorded): the dependent first, then its base.
        segment_job_run_definition(job_id=job.pk, definition_id=loyal_buyers.pk, now=NOW)
        assert status(loyal_buyers, profile) is None
        segment_job_run_definition(job_id=job.pk, definition_id=loyal.pk, now=NOW)
    assert SegmentJobRun.objects.get(job=job, definition=loyal_buyers).status == "succeeded"
    assert status(loyal_buyers, profile) == "realized"  # through streaming propagation
