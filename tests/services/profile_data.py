"""Profiles with identities and events, built the way the profile services store them."""

from __future__ import annotations

import itertools
from datetime import datetime

from audiences.models import Dataset, Event, Identity, MergePolicy, Profile

_seq = itertools.count(1)


def event_dataset() -> Dataset:
    dataset, _ = Dataset.objects.get_or_create(
        name="Web events", defaults={"class_name": Dataset.Class.EVENT})
    return dataset


def identity(namespace: str, value: str, *, at: datetime, cluster_id: int | None = None
             ) -> Identity:
    row = Identity.objects.create(namespace=namespace, value=value, first_seen=at, last_seen=at)
    row.cluster_id = cluster_id or row.pk
    row.save(update_fields=["cluster_id"])
    return row


def person(*, policy: MergePolicy, attributes: dict, at: datetime, email: str | None = None,
           identities: list[Identity] | None = None, excluded: bool = False
           ) -> tuple[Profile, list[Identity]]:
    """A merged profile of `policy` over one or more identities (one graph)."""
    email = email or f"p{next(_seq)}@example.com"
    identities = identities or [identity("Email", email, at=at)]
    entity_id = identities[0].cluster_id if policy.stitches else identities[0].pk
    identity_map: dict = {}
    for ident in identities:
        identity_map.setdefault(ident.namespace, []).append({"id": ident.value})
    profile = Profile.objects.create(
        merge_policy=policy, entity_id=entity_id, attributes=attributes,
        identity_map=identity_map, primary_namespace=identities[0].namespace,
        primary_id=identities[0].value, identity_count=len(identities), excluded=excluded,
        updated_at=at)
    return profile, identities


def event(ident: Identity, *, event_type: str, at: datetime, **payload) -> Event:
    return Event.objects.create(
        dataset=event_dataset(), event_id=f"evt-{next(_seq)}", identity=ident,
        cluster_id=ident.cluster_id, timestamp=at, event_type=event_type,
        payload={"_id": "x", "timestamp": at.isoformat(), "eventType": event_type, **payload},
        ingested_at=at)
