"""Audiences for the portal tests, written the way the services write them."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from audiences.models import MergePolicy, SegmentDefinition, Tag
from portal.scope import sandbox_scope

Definition = SegmentDefinition


def audience(sandbox, name, *, frequency="batch", days_ago=0, lifecycle="published",
             origin=Definition.Origin.SEGMENTATION, tags=(), count=0, creator=None,
             expression='homeAddress.countryISO = "US"', description=""):
    """One definition of `sandbox` with the given update frequency and counters."""
    with sandbox_scope(sandbox):
        at = timezone.now() - timedelta(days=days_ago)
        definition = Definition.objects.create(
            name=name, expression=expression, description=description,
            merge_policy=MergePolicy.objects.get(is_default=True), created_at=at,
            updated_at=at, lifecycle_state=lifecycle, origin=origin,
            evaluation_batch=frequency == "batch",
            evaluation_continuous=frequency == "streaming",
            evaluation_synchronous=frequency == "edge", qualified_count=count,
            realized_count=count // 2, existing_count=count - count // 2, created_by=creator)
        definition.tags.set([Tag.objects.get_or_create(name=tag)[0] for tag in tags])
        return definition
