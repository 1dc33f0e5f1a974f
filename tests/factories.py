"""Small builders for domain rows (inside a sandbox scope)."""

from __future__ import annotations

import itertools
from datetime import datetime

from django.utils import timezone

from audiences.models import MergePolicy, Profile, SegmentDefinition

_seq = itertools.count(1)


def default_policy() -> MergePolicy:
    return MergePolicy.objects.get(is_default=True)


def make_profile(*, merge_policy: MergePolicy | None = None, attributes: dict | None = None,
                 email: str | None = None, entity_id: int | None = None) -> Profile:
    n = next(_seq)
    email = email or f"person{n}@example.com"
    return Profile.objects.create(
        merge_policy=merge_policy or default_policy(), entity_id=entity_id or 10_000 + n,
        attributes=attributes or {}, identity_map={"Email": [{"id": email, "primary": True}]},
        primary_namespace="Email", primary_id=email, updated_at=timezone.now())


def make_definition(*, name: str | None = None, expression: str = 'homeAddress.countryISO = "US"',
                    at: datetime | None = None, **fields) -> SegmentDefinition:
    at = at or timezone.now()
    return SegmentDefinition.objects.create(
        name=name or f"Audience {next(_seq)}", expression=expression,
        merge_policy=fields.pop("merge_policy", None) or default_policy(), created_at=at,
        updated_at=at, **fields)
