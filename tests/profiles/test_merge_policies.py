"""Merge-policy rules and the rebuild of their profiles from stored fragments."""

from __future__ import annotations

import pytest

from audiences.models import MembershipChange, MergePolicy, Profile
from audiences.services.ingest import ingest_records
from audiences.services.merge_policies import (
    merge_policy_create,
    merge_policy_delete,
    merge_policy_update,
)
from audiences.services.profiles import profile_for_identity
from portal.errors import SiftError
from tests.profiles.conftest import NOW, event, person


@pytest.fixture
def people(crm, loyalty, web):
    ingest_records(dataset=crm, records=[person({"CRMID": "c1", "Email": "a@x.com"},
                                                homeAddress={"city": "Paris"})],
                   now=NOW, source="import")
    ingest_records(dataset=loyalty, records=[person({"LoyaltyID": "L1", "Email": "a@x.com"},
                                                    homeAddress={"city": "Lyon"})],
                   now=NOW, source="import")
    ingest_records(dataset=web, records=[event("e1", {"ECID": "9"})], now=NOW, source="import")


def test_a_new_policy_is_rebuilt_from_stored_fragments_with_progress(
        people, crm, loyalty, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        policy = merge_policy_create(name="CRM first", attribute_merge="dataSetPrecedence",
                                     dataset_order=[crm.pk, loyalty.pk], now=NOW)
    policy.refresh_from_db()
    assert policy.rebuild_state == "ready"
    assert policy.rebuild_progress["done"] == policy.rebuild_progress["total"] > 0
    profile = profile_for_identity(merge_policy=policy, namespace="Email", value="a@x.com")
    assert profile.attributes["homeAddress"]["city"] == "Paris"
    assert Profile.objects.filter(merge_policy=policy).count() == 2  # the person + the visitor


def test_changing_the_graph_type_rebuilds_which_profiles_exist(
        people, django_capture_on_commit_callbacks):
    policy = MergePolicy.objects.get(is_default=True)
    assert Profile.objects.filter(merge_policy=policy).count() == 2
    with django_capture_on_commit_callbacks(execute=True):
        merge_policy_update(merge_policy=policy, changes={"identity_graph": "none"}, now=NOW)
    policy.refresh_from_db()
    assert policy.version == 2 and policy.rebuild_state == "ready"
    # Per identity: the CRM record, the loyalty record and the visitor stand alone.
    assert Profile.objects.filter(merge_policy=policy).count() == 3


def test_a_stale_rebuild_is_superseded_by_a_newer_version(people):
    from audiences.services.merge_policies import merge_policy_rebuild

    policy = MergePolicy.objects.get(is_default=True)
    assert merge_policy_rebuild(merge_policy_id=policy.pk, version=policy.version - 1,
                                now=NOW) == "SUPERSEDED"


def test_one_default_and_one_edge_policy_per_sandbox(scoped):
    first = MergePolicy.objects.get(is_default=True)
    second = merge_policy_create(name="Second", is_default=True, is_active_on_edge=True,
                                 now=NOW)
    first.refresh_from_db()
    assert (first.is_default, first.is_active_on_edge) == (False, False)
    assert (second.is_default, second.is_active_on_edge) == (True, True)
    with pytest.raises(SiftError) as error:
        merge_policy_update(merge_policy=second, changes={"is_default": False}, now=NOW)
    assert error.value.code == "default_merge_policy"


def test_deleting_is_refused_for_the_default_and_the_edge_policy(scoped):
    default = MergePolicy.objects.get(is_default=True)
    with pytest.raises(SiftError) as error:
        merge_policy_delete(merge_policy=default)
    assert error.value.code == "default_merge_policy"
    edge = merge_policy_create(name="Edge", is_active_on_edge=True, now=NOW)
    with pytest.raises(SiftError) as error:
        merge_policy_delete(merge_policy=edge)
    assert error.value.code == "merge_policy_active_on_edge"


def test_precedence_needs_profile_datasets_of_this_sandbox(scoped, web, acme_dev):
    with pytest.raises(SiftError, match="attributeMerge.order"):
        merge_policy_create(name="P", attribute_merge="dataSetPrecedence", now=NOW)
    with pytest.raises(SiftError, match="not a profile dataset"):
        merge_policy_create(name="P", attribute_merge="dataSetPrecedence",
                            dataset_order=[web.pk], now=NOW)
    with pytest.raises(SiftError, match="identityGraph.type"):
        merge_policy_create(name="P", identity_graph="maybe", now=NOW)


def test_the_policy_limit_is_per_sandbox(scoped, settings, acme_dev):
    from portal.scope import sandbox_scope

    settings.SIFT_MAX_MERGE_POLICIES = 2
    merge_policy_create(name="Second", now=NOW)
    with pytest.raises(SiftError) as error:
        merge_policy_create(name="Third", now=NOW)
    assert error.value.code == "limit_exceeded"
    with sandbox_scope(acme_dev):
        assert merge_policy_create(name="Second", now=NOW).name == "Second"


def test_a_graph_merge_exits_the_absorbed_profiles_audiences(crm, web, alice):
    from audiences.services.definitions import definition_create
    from audiences.services.memberships import membership_apply

    ingest_records(dataset=crm, records=[person({"CRMID": "c1"})], now=NOW, source="import")
    ingest_records(dataset=web, records=[event("e1", {"ECID": "9"})], now=NOW, source="import")
    visitor = Profile.objects.get(primary_namespace="ECID")
    definition = definition_create(name="Visitors", expression='eventType = "x"',
                                   description="", requested=None, tags=(), user=None, now=NOW)
    membership_apply(definition=definition, results={visitor.pk: True}, at=NOW, source="batch")
    # The visitor signs in: the ECID's graph joins the (older) CRM graph.
    result = ingest_records(dataset=web, records=[event("e2", {"ECID": "9", "CRMID": "c1"})],
                            now=NOW, source="import")
    assert result.change.removed_profile_ids == (visitor.pk,)
    assert not Profile.objects.filter(pk=visitor.pk).exists()
    assert MembershipChange.objects.filter(definition=definition, new_status="exited").exists()
    merged = Profile.objects.get()
    assert merged.identity_count == 2 and result.change.profile_ids == (merged.pk,)


def test_a_rebuild_whose_worker_died_is_requeued_once(people, acme_prod):
    from datetime import timedelta

    from audiences.services.merge_policies import merge_policy_rebuild_sweep

    policy = merge_policy_create(name="Stuck", now=NOW)  # on_commit never fires in this test
    policy.refresh_from_db()
    assert policy.rebuild_state == "rebuilding"
    assert merge_policy_rebuild_sweep(now=NOW) == 0  # just requested: not stale yet
    later = NOW + timedelta(hours=1)
    assert merge_policy_rebuild_sweep(now=later) == 1  # eager task: rebuilt at once
    policy.refresh_from_db()
    assert policy.rebuild_state == "ready"
    assert Profile.objects.filter(merge_policy=policy).count() == 2
    assert merge_policy_rebuild_sweep(now=later) == 0
