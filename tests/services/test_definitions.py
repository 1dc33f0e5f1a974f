"""The definition services: the one write path the API and the portal share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from audiences.models import DefinitionHistory, MergePolicy, SegmentDefinition
from audiences.services import definitions as service
from audiences.services.definitions import (
    definition_copy,
    definition_create,
    definition_delete,
    definition_delete_blockers,
    definition_set_lifecycle,
    definition_tags_add,
    definition_update,
    definition_validate,
)
from portal.errors import SiftError

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
EVENT_NO_WINDOW = 'select v from xEvent where v.web.name = "home"'


@pytest.fixture
def user(alice):
    from django.contrib.auth.models import User

    return User.objects.get(username="alice")


def create(name, expression='homeAddress.country = "US"', *, user=None, **kwargs):
    return definition_create(name=name, expression=expression, user=user, now=T0, **kwargs)


def test_validate_writes_nothing_and_explains_a_syntax_error(in_acme_prod,
                                                             django_assert_max_num_queries):
    with django_assert_max_num_queries(0):
        verdict = definition_validate(expression='a = "x" and\n  b =')
    assert not verdict.ok
    error = verdict.to_dict()["error"]
    assert error["line"] == 2
    assert error["caret"].splitlines() == ["  b =", " " * (error["column"] - 1) + "^"]
    assert error["message"]
    assert not SegmentDefinition.objects.exists()


def test_validate_reports_eligibility_and_what_would_be_saved(in_acme_prod):
    verdict = definition_validate(expression=EVENT_NO_WINDOW,
                                  requested={"streaming": True})
    assert verdict.ok
    data = verdict.to_dict()
    assert data["saved"] == {"batch": True, "streaming": False, "edge": False}
    assert data["eligibility"]["streaming"] is False
    assert data["eligibility"]["refused"]["streaming"]
    assert data["eligibility"]["reasons"]["streaming"]
    assert data["references"]["usesEvents"] is True
    assert not SegmentDefinition.objects.exists()


def test_validate_uses_the_given_merge_policy(in_acme_prod):
    off_edge = MergePolicy.objects.create(name="Off edge", identity_graph="none")
    verdict = definition_validate(expression="a = 1", merge_policy=off_edge,
                                  requested={"edge": True})
    assert verdict.saved == {"batch": True, "streaming": False, "edge": False}
    assert "active-on-edge" in verdict.refused["edge"][0]


def test_create_stores_the_verdict_references_and_a_history_row(in_acme_prod, user):
    definition = create("US", requested={"streaming": True}, user=user, tags=["vip"])
    assert definition.evaluation_continuous and not definition.evaluation_batch
    assert definition.requested_evaluation == {"batch": False, "streaming": True, "edge": False}
    assert definition.eligibility_ruleset
    assert definition.references["profilePaths"] == ["homeAddress.country"]
    assert definition.references["usesEvents"] is False
    assert [t.name for t in definition.tags.all()] == ["vip"]
    (history,) = DefinitionHistory.objects.filter(definition=definition)
    assert history.action == "created" and history.user == user and history.at == T0
    assert history.new_expression == 'homeAddress.country = "US"'


def test_an_edit_of_the_name_keeps_an_older_rulesets_verdict(in_acme_prod, user):
    definition = create("Old", EVENT_NO_WINDOW)
    # As if judged before 20 May 2025, when one event without a window was streaming.
    SegmentDefinition.objects.filter(pk=definition.pk).update(
        evaluation_continuous=True, eligibility_ruleset="2024-legacy")
    definition.refresh_from_db()
    renamed = definition_update(definition=definition, changes={"name": "Renamed"}, user=user,
                                now=T0 + timedelta(hours=1))
    assert renamed.evaluation_continuous and renamed.eligibility_ruleset == "2024-legacy"
    assert renamed.updated_at == T0 + timedelta(hours=1)
    edited = definition_update(definition=renamed,
                               changes={"expression": EVENT_NO_WINDOW + " or a = 1"},
                               user=user, now=T0 + timedelta(hours=2))
    assert not edited.evaluation_continuous and edited.evaluation_batch
    assert edited.eligibility_ruleset != "2024-legacy"
    assert edited.eligibility["refused"]["streaming"]
    assert edited.version == 2
    last = DefinitionHistory.objects.filter(definition=edited).first()
    assert "evaluation" in last.changed_fields and "expression" in last.changed_fields
    assert last.old_values["evaluation"]["streaming"] is True
    assert last.new_values["evaluation"]["streaming"] is False


def test_an_edit_that_changes_nothing_writes_no_history(in_acme_prod, user):
    definition = create("Same")
    definition_update(definition=definition, changes={"name": "Same"}, user=user, now=T0)
    assert DefinitionHistory.objects.filter(definition=definition).count() == 1


def test_a_cycle_through_three_definitions_is_named(in_acme_prod):
    a = create("A")
    b = create("B", f'inSegment("{a.pk}")')
    c = create("C", f'inSegment("{b.pk}")')
    with pytest.raises(SiftError) as error:
        definition_update(definition=a, changes={"expression": f'inSegment("{c.pk}")'},
                          user=None, now=T0)
    assert error.value.code == "segment_cycle"
    assert error.value.details["cycle"] == [str(a.pk), str(c.pk), str(b.pk), str(a.pk)]
    assert "A (" in error.value.message


def test_delete_blockers_name_the_dependents_and_delete_keeps_history(in_acme_prod):
    base = create("Base")
    child = create("Child", f'inSegment("{base.pk}")')
    assert definition_delete_blockers(base) == [f"Child ({child.pk}) references it with "
                                                "inSegment."]
    with pytest.raises(SiftError):
        definition_delete(definition=base, user=None, now=T0)
    definition_delete(definition=child, user=None, now=T0)
    assert definition_delete_blockers(base) == []
    definition_delete(definition=base, user=None, now=T0)
    assert not SegmentDefinition.objects.exists()
    actions = sorted(DefinitionHistory.objects.filter(definition_uuid=base.pk)
                     .values_list("action", flat=True))
    assert actions == ["created", "deleted"]


def test_the_delete_blocker_hook_can_be_extended(in_acme_prod, monkeypatch):
    """The destinations team wraps `definition_delete_blockers` to add activations."""
    base = create("Activated")
    original = service.definition_delete_blockers
    monkeypatch.setattr(service, "definition_delete_blockers",
                        lambda d: [*original(d), "It is activated to Email destination."])
    with pytest.raises(SiftError) as error:
        definition_delete(definition=base, user=None, now=T0)
    assert "Email destination" in error.value.message


def test_copy_makes_a_draft_with_the_same_rules_tags_and_labels(in_acme_prod, user):
    original = create("Original", requested={"streaming": True}, labels=["core/C1"],
                      tags=["vip"])
    copy = definition_copy(definition=original, user=user, now=T0)
    assert copy.name == "Original (copy)" and copy.lifecycle_state == "draft"
    assert copy.expression == original.expression
    assert copy.evaluation_continuous and copy.labels == ["core/C1"]
    assert [t.name for t in copy.tags.all()] == ["vip"]
    assert definition_copy(definition=original, user=user, now=T0).name == "Original (copy) 2"


def test_lifecycle_moves_and_refusals(in_acme_prod):
    draft = create("Draft", lifecycle_state="draft")
    published = definition_set_lifecycle(definition=draft, state="published", user=None, now=T0)
    assert published.lifecycle_state == "published"
    with pytest.raises(SiftError) as error:
        definition_set_lifecycle(definition=published, state="draft", user=None, now=T0)
    assert error.value.code == "invalid_lifecycle_state"
    inactive = definition_set_lifecycle(definition=published, state="inactive", user=None,
                                        now=T0)
    assert inactive.lifecycle_state == "inactive"
    with pytest.raises(SiftError):
        definition_set_lifecycle(definition=inactive, state="archived", user=None, now=T0)


def test_tags_are_added_in_bulk_once(in_acme_prod, user):
    one, two = create("One", tags=["vip"]), create("Two")
    assert definition_tags_add(definitions=[one, two], tags=["vip", "q4"], user=user,
                               now=T0) == 2
    assert definition_tags_add(definitions=[one, two], tags=["vip"], user=user, now=T0) == 0
    assert sorted(two.tags.values_list("name", flat=True)) == ["q4", "vip"]


def test_names_are_unique_per_sandbox_not_per_organization(in_acme_prod, acme_dev):
    from portal.scope import sandbox_scope

    create("Shared name")
    with pytest.raises(SiftError) as error:
        create("Shared name")
    assert error.value.status == 422
    with sandbox_scope(acme_dev):
        assert create("Shared name").name == "Shared name"
