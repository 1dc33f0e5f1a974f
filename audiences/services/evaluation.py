"""The Python evaluator over stored profile data, chunked so memory stays flat.

Used by previews and estimates, by the batch team's Python fallback and benchmark, and by the
streaming team's parity checks. Per chunk of profiles (in primary-key order):

1. one query loads the profiles (excluded ones, over the identity-graph limit, are skipped);
2. one query loads their events (only when the query reads events, only inside its lookback
   when the engine knows it, only from the policy's event datasets when it lists any);
3. one query loads their current memberships (only when the query uses `inSegment`).

A profile's events are `Event.cluster_id == profile.entity_id` under a stitching (`pdg`) policy
and `Event.identity_id == profile.entity_id` under `none` (models/profiles.py, invariant 2).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet

from audiences.models import Event, MergePolicy, Profile
from audiences.services.memberships import profile_segment_ids

DEFAULT_CHUNK_SIZE = 2000


@dataclass(frozen=True)
class Chunk:
    """One evaluated chunk: how many profiles were read and which of them matched."""

    scanned: int
    matched_profiles: tuple[Profile, ...]
    last_pk: int | None

    @property
    def matched(self) -> tuple[int, ...]:
        return tuple(p.pk for p in self.matched_profiles)


def profile_document(profile: Profile) -> dict[str, Any]:
    """The merged profile as PQL sees it: its XDM attributes plus its `identityMap`."""
    document = dict(profile.attributes or {})
    document.setdefault("identityMap", profile.identity_map or {})
    return document


def _lookback(query: Any) -> timedelta | None:
    """How far back the query can look (None: unbounded, load every event)."""
    return query.references.lookback


def _events_by_profile(*, profiles: list[Profile], merge_policy: MergePolicy,
                       lookback: timedelta | None, now: datetime) -> dict[int, list[dict]]:
    key = "cluster_id" if merge_policy.stitches else "identity_id"
    entity_ids = [p.entity_id for p in profiles]
    events = Event.objects.filter(**{f"{key}__in": entity_ids})
    if merge_policy.event_datasets:
        events = events.filter(dataset_id__in=merge_policy.event_datasets)
    if lookback is not None:
        events = events.filter(timestamp__gte=now - lookback)
    # No filter on event types: the engine reports them lower-cased (it compares without case)
    # and a case-insensitive filter could not use the (sandbox, event_type, timestamp) index.
    by_entity: dict[int, list[dict]] = defaultdict(list)
    for entity_id, payload in events.order_by("timestamp", "id").values_list(key, "payload"):
        by_entity[entity_id].append(payload)
    return by_entity


def evaluate_chunks(*, query: Any, merge_policy: MergePolicy, now: datetime,
                    profiles: QuerySet | None = None, profile_ids: Iterable[int] | None = None,
                    chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[Chunk]:
    """Evaluate `query` over the policy's profiles (optionally narrowed), chunk by chunk."""
    base = profiles if profiles is not None else Profile.objects.all()
    base = base.filter(merge_policy=merge_policy, excluded=False)
    if profile_ids is not None:
        base = base.filter(pk__in=list(profile_ids))
    refs = query.references
    uses_events = refs.uses_events
    uses_segments = bool(refs.segment_ids)
    last_pk = 0
    while True:
        chunk = list(base.filter(pk__gt=last_pk).order_by("pk")
                     .only("pk", "entity_id", "attributes", "identity_map", "primary_namespace",
                           "primary_id")[:chunk_size])
        if not chunk:
            return
        events = (_events_by_profile(profiles=chunk, merge_policy=merge_policy,
                                     lookback=_lookback(query), now=now)
                  if uses_events else {})
        segments = (profile_segment_ids(profile_ids=[p.pk for p in chunk])
                    if uses_segments else {})
        matched = tuple(
            p for p in chunk
            if query.evaluate(profile_document(p), events.get(p.entity_id, []), now=now,
                              segments=segments.get(p.pk, frozenset()),
                              events_in_order=True))  # loaded ORDER BY timestamp
        last_pk = chunk[-1].pk
        yield Chunk(scanned=len(chunk), matched_profiles=matched, last_pk=last_pk)
        if len(chunk) < chunk_size:
            return


def evaluate_python(*, query: Any, merge_policy: MergePolicy, now: datetime,
                    profile_ids: Iterable[int] | None = None,
                    chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[int]:
    """Ids of the profiles of `merge_policy` for which `query` holds at `now`."""
    for chunk in evaluate_chunks(query=query, merge_policy=merge_policy, now=now,
                                 profile_ids=profile_ids, chunk_size=chunk_size):
        yield from chunk.matched

