"""What every sandbox needs to work: a default merge policy and the daily batch schedule."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from audiences.models import MergePolicy, Schedule
from portal.models import Sandbox
from portal.scope import sandbox_scope

DEFAULT_MERGE_POLICY_NAME = "Default Timebased"
SYSTEM_SCHEDULE_NAME = "Daily batch segmentation"
# Adobe's system schedule runs daily; 05:00 UTC is the community-reported default.
SYSTEM_SCHEDULE_CRON = "0 0 5 * * ?"


def sandbox_bootstrap(*, sandbox: Sandbox) -> None:
    """Idempotent: safe to call on every start and after every sandbox creation."""
    with sandbox_scope(sandbox), transaction.atomic():
        if not MergePolicy.objects.filter(is_default=True).exists():
            MergePolicy.objects.create(
                name=DEFAULT_MERGE_POLICY_NAME,
                identity_graph=MergePolicy.IdentityGraph.PDG,
                attribute_merge=MergePolicy.AttributeMerge.TIMESTAMP_ORDERED,
                is_default=True,
                is_active_on_edge=not MergePolicy.objects.filter(is_active_on_edge=True).exists(),
            )
        if not Schedule.objects.filter(is_system=True).exists():
            now = timezone.now()
            Schedule.objects.create(
                name=SYSTEM_SCHEDULE_NAME, type=Schedule.Type.BATCH_SEGMENTATION,
                schedule=SYSTEM_SCHEDULE_CRON, state=Schedule.State.ACTIVE,
                properties={"segments": ["*"]}, is_system=True, created_at=now, updated_at=now,
            )


def sandbox_purge(*, sandbox: Sandbox) -> None:
    """Delete a sandbox and every row in it (definitions first: they protect their merge
    policy from deletion one at a time)."""
    from audiences.models import SegmentDefinition

    with transaction.atomic():
        SegmentDefinition.objects.unscoped().filter(sandbox=sandbox).delete()
        sandbox.delete()
