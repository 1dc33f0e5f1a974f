from datetime import UTC, datetime, timedelta

from django.test import override_settings

from audiences.models import Membership, MembershipChange, SegmentDefinition
from audiences.services import memberships
from audiences.services.memberships import membership_apply, profile_segment_ids
from tests.factories import make_definition, make_profile

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
received = []


def consumer(*, announcement):
    received.append(announcement)


def changes(definition):
    return list(MembershipChange.objects.filter(definition=definition).order_by("id")
                .values_list("profile_id", "old_status", "new_status"))


def test_a_qualifying_profile_is_realized_once_and_exits_once(in_acme_prod):
    definition = make_definition()
    alice, bob = make_profile(), make_profile()
    membership_apply(definition=definition, results={alice.pk: True, bob.pk: False}, at=T0,
                     source="streaming")
    membership_apply(definition=definition, results={alice.pk: True, bob.pk: False},
                     at=T0 + timedelta(minutes=1), source="streaming")
    assert changes(definition) == [(alice.pk, "", "realized")]
    membership_apply(definition=definition, results={alice.pk: False},
                     at=T0 + timedelta(hours=1), source="streaming")
    membership_apply(definition=definition, results={alice.pk: False},
                     at=T0 + timedelta(hours=2), source="streaming")
    assert changes(definition) == [(alice.pk, "", "realized"), (alice.pk, "realized", "exited")]
    membership = Membership.objects.get(definition=definition, profile=alice)
    assert membership.status == "exited"
    assert membership.last_qualification_time == T0 + timedelta(hours=1)


def test_counters_follow_the_transitions(in_acme_prod):
    definition = make_definition()
    people = [make_profile() for _ in range(3)]
    membership_apply(definition=definition, results={p.pk: True for p in people}, at=T0,
                     source="streaming")
    membership_apply(definition=definition, results={people[0].pk: False}, at=T0,
                     source="streaming")
    definition = SegmentDefinition.objects.get(pk=definition.pk)
    assert (definition.qualified_count, definition.realized_count,
            definition.exited_count) == (2, 2, 1)
    memberships.counts_refresh(definition_ids=[definition.pk], at=T0)
    definition.refresh_from_db()
    assert (definition.qualified_count, definition.realized_count,
            definition.exited_count) == (2, 2, 1)


def test_requalifying_after_an_exit_realizes_again(in_acme_prod):
    definition = make_definition()
    person = make_profile()
    for qualifies in (True, False, True):
        membership_apply(definition=definition, results={person.pk: qualifies}, at=T0,
                         source="batch")
    assert [c[2] for c in changes(definition)] == ["realized", "exited", "realized"]


def test_recheck_time_is_kept_for_qualified_profiles(in_acme_prod):
    definition = make_definition()
    person = make_profile()
    lapse = T0 + timedelta(hours=3)
    membership_apply(definition=definition, results={person.pk: True}, at=T0,
                     source="streaming", recheck_at={person.pk: lapse})
    assert Membership.objects.get(profile=person).recheck_at == lapse
    later = lapse + timedelta(hours=1)
    membership_apply(definition=definition, results={person.pk: True}, at=T0,
                     source="streaming", recheck_at={person.pk: later})
    assert Membership.objects.get(profile=person).recheck_at == later
    assert len(changes(definition)) == 1


@override_settings(SIFT_MEMBERSHIP_CONSUMERS=["tests.services.test_memberships.consumer"])
def test_consumers_hear_about_changes_after_commit(in_acme_prod,
                                                   django_capture_on_commit_callbacks):
    received.clear()
    definition = make_definition()
    person = make_profile()
    with django_capture_on_commit_callbacks(execute=True):
        recorded = membership_apply(definition=definition, results={person.pk: True}, at=T0,
                                    source="edge")
        assert received == []
    assert len(received) == 1
    assert received[0].change_ids == tuple(c.pk for c in recorded)
    assert received[0].source == "edge"


def test_profile_segment_ids_lists_current_memberships(in_acme_prod):
    first, second = make_definition(), make_definition()
    person = make_profile()
    membership_apply(definition=first, results={person.pk: True}, at=T0, source="batch")
    membership_apply(definition=second, results={person.pk: True}, at=T0, source="batch")
    membership_apply(definition=second, results={person.pk: False}, at=T0, source="batch")
    assert profile_segment_ids(profile_ids=[person.pk]) == {person.pk: frozenset({str(first.pk)})}


def test_exit_profiles_exits_everything_a_vanishing_profile_was_in(in_acme_prod):
    first, second = make_definition(), make_definition()
    person = make_profile()
    for definition in (first, second):
        membership_apply(definition=definition, results={person.pk: True}, at=T0, source="batch")
    assert memberships.exit_profiles(profile_ids=[person.pk], at=T0) == 2
    assert set(Membership.objects.values_list("status", flat=True)) == {"exited"}


def test_counters_never_underflow_when_a_batch_recount_forgot_older_exits(in_acme_prod):
    from datetime import UTC, datetime

    from audiences.models import SegmentDefinition
    from audiences.services.memberships import membership_apply
    from tests.factories import make_definition, make_profile

    at = datetime(2026, 11, 2, tzinfo=UTC)
    definition = make_definition(name="Returning")
    profile = make_profile()
    membership_apply(definition=definition, results={profile.pk: True}, at=at, source="batch")
    membership_apply(definition=definition, results={profile.pk: False}, at=at, source="batch")
    # A later batch job's recount keeps only its own exits in the breakdown.
    SegmentDefinition.objects.filter(pk=definition.pk).update(exited_count=0)
    membership_apply(definition=definition, results={profile.pk: True}, at=at,
                     source="streaming")
    definition.refresh_from_db()
    assert (definition.exited_count, definition.realized_count) == (0, 1)
