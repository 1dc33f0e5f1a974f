"""The demo sandbox, built through the product's own services at a small size."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.management import call_command

from audiences.models import MergePolicy, Profile, SegmentDefinition, SegmentJob
from audiences.services.demo import AUDIENCES, PRECEDENCE_POLICY, demo_build, demo_history
from portal.models import Sandbox
from portal.scope import sandbox_scope

NOW = datetime(2026, 11, 23, 18, 30, tzinfo=UTC)


@pytest.fixture
def demo(db, django_capture_on_commit_callbacks):
    call_command("demo", "--no-data")
    sandbox = Sandbox.objects.get(organization__ims_org_id="DEMO1234@AdobeOrg", name="prod")
    with django_capture_on_commit_callbacks(execute=True):  # merge-policy rebuilds, streaming
        result = demo_build(sandbox=sandbox, profiles=1500, days=30, now=NOW, history=False)
    return sandbox, result


def test_every_seeded_audience_is_created_with_its_methods_and_has_members(demo):
    sandbox, result = demo
    assert result.built and result.rejected == 0 and result.audiences == len(AUDIENCES)
    with sandbox_scope(sandbox):
        by_name = {d.name: d for d in SegmentDefinition.objects.all()}
        assert set(by_name) == {a.name for a in AUDIENCES}
        empty = []
        for audience in AUDIENCES:
            definition = by_name[audience.name]
            assert definition.evaluation_batch
            assert definition.evaluation_continuous == ("streaming" in audience.methods)
            assert definition.evaluation_synchronous == ("edge" in audience.methods)
            if definition.qualified_count == 0:
                empty.append(audience.name)
        assert empty == [], empty


def test_the_two_merge_policies_disagree_on_some_people(demo):
    sandbox, _ = demo
    with sandbox_scope(sandbox):
        default = MergePolicy.objects.get(is_default=True)
        precedence = MergePolicy.objects.get(name=PRECEDENCE_POLICY)
        assert default.is_active_on_edge
        merged = dict(Profile.objects.filter(merge_policy=default)
                      .values_list("primary_id", "attributes"))
        other = dict(Profile.objects.filter(merge_policy=precedence)
                     .values_list("primary_id", "attributes"))
        differing = [key for key, attributes in other.items()
                     if key in merged and merged[key].get("homeAddress")
                     != attributes.get("homeAddress")]
        assert differing


def test_building_again_is_a_no_op_and_history_is_resumable(demo):
    sandbox, _ = demo
    assert not demo_build(sandbox=sandbox, profiles=1500, days=3, now=NOW).built
    assert demo_history(sandbox=sandbox, days=3, now=NOW) == 4  # three past days, then now
    assert demo_history(sandbox=sandbox, days=3, now=NOW) == 0
    with sandbox_scope(sandbox):
        assert SegmentJob.objects.filter(status="SUCCEEDED").count() == 5
