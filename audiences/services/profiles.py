"""Merged profiles: how fragments become the `Profile` rows segments read, how they are loaded,
looked up by identity, and how a change is announced to the rest of Sift.

Merge rules (shared/aep-reference.md Part B §6.4), per merge policy:
1. The entity is the identity graph (`cluster_id`) under `pdg`, the single primary identity
   under `none` (models/profiles.py, invariant 2). An entity has a profile as soon as it has a
   fragment or an event.
2. `timestampOrdered`: fragments are deep-merged oldest first, so per leaf the fragment with the
   newest `updated_at` (extSourceSystemAudit.lastUpdatedDate, else ingestion time) wins.
3. `dataSetPrecedence`: only the listed datasets count; they are deep-merged lowest priority
   first, so the earliest dataset of `dataset_order` wins; within one dataset the timestamp
   rule breaks ties.
4. Arrays are leaves (replaced whole), objects merge key by key.
5. A graph with more identities than `SIFT_MAX_GRAPH_IDENTITIES` (50, AEP's hard limit) keeps its
   profile row but is `excluded` from segmentation and Profile Access (422), as AEP does.

After ingestion commits, `changed(change)` hands a `ProfileChange` to every consumer named in
`settings.SIFT_CHANGE_CONSUMERS` (streaming registers itself there).
"""

from __future__ import annotations

import base64
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import transaction
from django.utils.module_loading import import_string

from audiences.models import (
    Event,
    Identity,
    Membership,
    MergePolicy,
    Profile,
    ProfileFragment,
)
from audiences.services.evaluation import profile_document
from audiences.services.memberships import exit_profiles
from audiences.services.sql import any_of, rows_insert, rows_update
from portal.errors import ErrorCode, SiftError
from portal.scope import current_sandbox

log = logging.getLogger(__name__)

DEFAULT_GRAPH_LIMIT = 50
LOOKUP_CHUNK = 900  # below SQLite's historical 999 bound variables per statement

# Standard namespaces (shared/aep-reference.md Part B §4.2): canonical code -> identity type.
STANDARD_NAMESPACES: dict[str, str] = {
    "ECID": "COOKIE", "Email": "EMAIL", "Phone": "PHONE", "AAID": "COOKIE",
    "AdCloud": "COOKIE", "IDFA": "DEVICE", "GAID": "DEVICE", "TNTID": "COOKIE",
    "WAID": "DEVICE", "APNS": "DEVICE", "FCM": "DEVICE", "Email_LC_SHA256": "EMAIL",
    "Phone_E.164": "PHONE", "Phone_SHA256": "PHONE", "Phone_SHA256_E.164": "PHONE",
}
_CANONICAL = {code.lower(): code for code in STANDARD_NAMESPACES}


def namespace_code(code: str) -> str:
    """Standard namespaces are matched without case (docs mix `email`/`Email`); custom ones
    (CRMID...) are case-sensitive, as the Web SDK documents."""
    return _CANONICAL.get(code.lower(), code)


def graph_limit() -> int:
    return getattr(settings, "SIFT_MAX_GRAPH_IDENTITIES", DEFAULT_GRAPH_LIMIT)


# --- The change announcement -----------------------------------------------------------------


@dataclass(frozen=True)
class ProfileChange:
    """What one committed ingestion changed. Consumers are called as `consumer(change=change)`."""

    sandbox_id: int
    profile_ids: tuple[int, ...]  # Profile pks touched, under every merge policy
    attribute_paths: tuple[str, ...]  # dotted XDM paths whose merged value changed
    event_types: tuple[str, ...]  # as ingested (case kept)
    event_ids: tuple[str, ...]  # XDM `_id`s of the newly stored events
    now: datetime
    source: str
    removed_profile_ids: tuple[int, ...] = ()  # profiles deleted because their graphs merged


def changed(change: ProfileChange) -> None:
    """Announce `change` to each consumer once the surrounding transaction commits.

    `robust=True`: the data is committed whatever a consumer does; a consumer that raises is
    logged by Django and does not stop the others or fail the ingest request.
    """
    for dotted in settings.SIFT_CHANGE_CONSUMERS:
        consumer = import_string(dotted)
        transaction.on_commit(lambda consumer=consumer: consumer(change=change), robust=True)


# --- Merging ------------------------------------------------------------------------------


def deep_merge(base: dict, update: dict) -> dict:
    """`update` over `base`: objects merge key by key, anything else (arrays too) replaces."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def leaf_paths(document: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """(dotted path, value) of every leaf; arrays are leaves."""
    if isinstance(document, dict) and document:
        for key, value in document.items():
            yield from leaf_paths(value, f"{prefix}.{key}" if prefix else key)
    elif prefix:
        yield prefix, document


def changed_paths(before: dict, after: dict) -> set[str]:
    old = dict(leaf_paths(before))
    new = dict(leaf_paths(after))
    return {path for path in old.keys() | new.keys() if old.get(path, _MISSING) != new.get(
        path, _MISSING)}


_MISSING = object()


def merge_fragments(policy: MergePolicy, fragments: list) -> dict:
    """The merged attributes of one entity's fragments under `policy` (rules 2-4 above)."""
    by_time = sorted(fragments, key=lambda f: (f.updated_at, f.ingested_at, f.pk or 0))
    if policy.attribute_merge == MergePolicy.AttributeMerge.DATASET_PRECEDENCE:
        rank = {dataset_id: i for i, dataset_id in enumerate(policy.dataset_order or [])}
        listed = [f for f in by_time if f.dataset_id in rank]
        # Stable sort: lowest priority first, timestamp order kept inside one dataset.
        ordered = sorted(listed, key=lambda f: -rank[f.dataset_id])
    else:
        ordered = by_time
    merged: dict = {}
    for fragment in ordered:
        merged = deep_merge(merged, fragment.attributes or {})
    return merged


class FragmentRow(NamedTuple):
    """The columns of a fragment that merging needs (model instances cost more to build)."""

    pk: int
    dataset_id: str
    identity_id: int
    cluster_id: int
    attributes: dict
    updated_at: datetime
    ingested_at: datetime


class ProfileRow(NamedTuple):
    pk: int
    merge_policy_id: Any
    entity_id: int
    attributes: dict
    identity_map: dict


@dataclass
class RefreshResult:
    profile_ids: set[int] = field(default_factory=set)
    attribute_paths: set[str] = field(default_factory=set)
    removed_profile_ids: set[int] = field(default_factory=set)


def _chunks(values: list, size: int = LOOKUP_CHUNK) -> Iterable[list]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _identity_map(identities: list[tuple[int, str, str]]) -> dict:
    identity_map: dict[str, list[dict]] = {}
    for _, namespace, value in sorted(identities):
        identity_map.setdefault(namespace, []).append({"id": value})
    return identity_map


def _primary(fragments: list[FragmentRow], identities: list[tuple[int, str, str]],
             by_id: dict[int, tuple[int, str, str]]) -> tuple[str, str]:
    """The primary identity of the newest fragment, else the graph's representative."""
    if fragments:
        newest = max(fragments, key=lambda f: (f.updated_at, f.pk or 0))
        if newest.identity_id in by_id:
            _, namespace, value = by_id[newest.identity_id]
            return namespace, value
    _, namespace, value = min(identities)
    return namespace, value


def profiles_refresh(*, policies: list[MergePolicy], clusters: Iterable[int],
                     identities: Iterable[int], now: datetime,
                     absorbed_clusters: Iterable[int] = ()) -> RefreshResult:
    """Recompute the merged profiles of the given graphs (`pdg` policies) and identities (`none`
    policies) under each policy, set-wise: a few queries whatever the number of entities.
    Callers pass only entities that hold a fragment or an event (rule 1).

    `absorbed_clusters`: graph ids that no longer exist (merged into another graph); their
    profiles under `pdg` policies are deleted and reported as removed.
    """
    result = RefreshResult()
    clusters = sorted(set(clusters))
    identity_ids = sorted(set(identities))
    stitching = [p for p in policies if p.stitches]
    separate = [p for p in policies if not p.stitches]
    absorbed = sorted(set(absorbed_clusters))
    if absorbed and stitching:
        for chunk in _chunks(absorbed):
            gone = list(Profile.objects.filter(merge_policy__in=stitching, entity_id__in=chunk)
                        .values_list("pk", flat=True))
            if gone:
                # Their audiences see them leave (the change log records it), then they go.
                exit_profiles(profile_ids=gone, at=now)
                Profile.objects.filter(pk__in=gone).delete()
                result.removed_profile_ids.update(gone)
    if stitching and clusters:
        _refresh_entities(policies=stitching, key="cluster_id", entity_ids=clusters, now=now,
                          result=result)
    if separate and identity_ids:
        _refresh_entities(policies=separate, key="identity_id", entity_ids=identity_ids,
                          now=now, result=result)
    return result


def _refresh_entities(*, policies: list[MergePolicy], key: str, entity_ids: list[int],
                      now: datetime, result: RefreshResult) -> None:
    sandbox_id = current_sandbox().pk
    for chunk in _chunks(entity_ids):
        fragments: dict[int, list[FragmentRow]] = defaultdict(list)
        for row in ProfileFragment.objects.filter(any_of(key, chunk)).values_list(
                "pk", "dataset_id", "identity_id", "cluster_id", "attributes", "updated_at",
                "ingested_at"):
            fragment = FragmentRow(*row)
            fragments[getattr(fragment, key)].append(fragment)
        ident_key = "cluster_id" if key == "cluster_id" else "pk"
        members: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
        rows = Identity.objects.filter(any_of(ident_key, chunk)).values_list(
            "pk", "cluster_id", "namespace", "value")
        for pk, cluster_id, namespace, value in rows:
            members[cluster_id if key == "cluster_id" else pk].append((pk, namespace, value))
        existing = {(row[1], row[2]): ProfileRow(*row) for row in Profile.objects.filter(
            any_of("entity_id", chunk), merge_policy__in=policies).values_list(
            "pk", "merge_policy_id", "entity_id", "attributes", "identity_map")}
        creates: list[tuple] = []
        updates: list[tuple] = []
        for entity_id in chunk:
            idents = members.get(entity_id)
            if not idents:
                continue  # a graph id that no identity carries any more
            by_id = {i[0]: i for i in idents}
            namespace, value = _primary(fragments.get(entity_id, []), idents, by_id)
            identity_map = _identity_map(idents)
            shared = (identity_map, namespace, value, len(idents), len(idents) > graph_limit(),
                      now)
            for policy in policies:
                attributes = merge_fragments(policy, fragments.get(entity_id, []))
                row = existing.get((policy.pk, entity_id))
                if row is None:
                    result.attribute_paths.update(path for path, _ in leaf_paths(attributes))
                    creates.append((sandbox_id, policy.pk, entity_id, attributes, *shared))
                    continue
                result.attribute_paths.update(changed_paths(row.attributes, attributes))
                if row.identity_map != identity_map:
                    result.attribute_paths.add("identityMap")
                updates.append((row.pk, attributes, *shared))
                result.profile_ids.add(row.pk)
        inserted = rows_insert(Profile, ["sandbox", "merge_policy", "entity_id", *PROFILE_COLUMNS],
                               creates, returning=["id"])
        result.profile_ids.update(pk for (pk,) in inserted)
        rows_update(Profile, PROFILE_COLUMNS, updates)


PROFILE_COLUMNS = ["attributes", "identity_map", "primary_namespace", "primary_id",
                   "identity_count", "excluded", "updated_at"]


# --- Reading ---------------------------------------------------------------------------------


def profiles_load(*, profile_ids: Iterable[int], lookback: timedelta | None, now: datetime
                  ) -> dict[int, tuple[dict, list[dict]]]:
    """Profile pk -> (the document PQL sees, its event payloads oldest first).

    Events are those of the profile's entity under its policy (invariant 2), restricted to the
    policy's event datasets when it lists any, and to `lookback` before `now` when given.
    One query for the profiles, one per merge policy (per chunk) for the events.
    """
    profiles = list(Profile.objects.filter(pk__in=list(profile_ids)).select_related(
        "merge_policy"))
    by_policy: dict[Any, list[Profile]] = defaultdict(list)
    for profile in profiles:
        by_policy[profile.merge_policy_id].append(profile)
    loaded: dict[int, tuple[dict, list[dict]]] = {}
    for group in by_policy.values():
        policy = group[0].merge_policy
        key = "cluster_id" if policy.stitches else "identity_id"
        events_by_entity: dict[int, list[dict]] = defaultdict(list)
        # A zero look-back (profile-only definitions) reads no events at all.
        entity_ids = [] if lookback == timedelta(0) else [p.entity_id for p in group]
        for chunk in _chunks(entity_ids):
            events = Event.objects.filter(**{f"{key}__in": chunk})
            if policy.event_datasets:
                events = events.filter(dataset_id__in=policy.event_datasets)
            if lookback is not None:
                events = events.filter(timestamp__gte=now - lookback)
            for entity_id, payload in events.order_by("timestamp", "pk").values_list(
                    key, "payload"):
                events_by_entity[entity_id].append(payload)
        for profile in group:
            loaded[profile.pk] = (profile_document(profile),
                                  events_by_entity.get(profile.entity_id, []))
    return loaded


def identity_find(*, namespace: str, value: str) -> Identity | None:
    """The stored identity (namespace matched as `namespace_code` canonicalises it)."""
    return Identity.objects.filter(namespace=namespace_code(namespace), value=value).first()


def profile_for_identity(*, merge_policy: MergePolicy, namespace: str, value: str
                         ) -> Profile | None:
    """The merged profile of `merge_policy` that an identity belongs to (None: unknown)."""
    identity = identity_find(namespace=namespace, value=value)
    if identity is None:
        return None
    entity_id = identity.cluster_id if merge_policy.stitches else identity.pk
    return Profile.objects.filter(merge_policy=merge_policy, entity_id=entity_id).first()


def merge_policy_or_default(merge_policy_id: Any = None) -> MergePolicy:
    if merge_policy_id:
        from audiences.services.definitions import merge_policy_get

        return merge_policy_get(merge_policy_id=merge_policy_id)
    policy = MergePolicy.objects.filter(is_default=True).first()
    if policy is None:
        raise SiftError(ErrorCode.UNKNOWN_MERGE_POLICY,
                        "This sandbox has no default merge policy; pass mergePolicyId.",
                        status=422)
    return policy


@dataclass(frozen=True)
class ProfileView:
    """Everything the profile page and Profile Access show about one merged profile."""

    profile: Profile
    merge_policy: MergePolicy
    identities: list[Identity]
    links: list[tuple[int, int]]  # graph edges (identity pks)
    fragments: list[ProfileFragment]
    events: list[Event]
    memberships: list[Membership]


def profile_lookup(*, namespace: str, value: str, merge_policy: MergePolicy | None = None,
                   events_limit: int = 20, check_graph_limit: bool = True) -> ProfileView | None:
    """One profile by identity under `merge_policy` (default policy when None)."""
    policy = merge_policy or merge_policy_or_default()
    profile = profile_for_identity(merge_policy=policy, namespace=namespace, value=value)
    if profile is None:
        return None
    if check_graph_limit and profile.excluded:
        raise SiftError(ErrorCode.IDENTITY_GRAPH_TOO_LARGE, "Too many related identities",
                        {"identities": profile.identity_count, "limit": graph_limit()})
    key = "cluster_id" if policy.stitches else "pk"
    identities = list(Identity.objects.filter(**{key: profile.entity_id}).order_by("pk"))
    from audiences.models import IdentityLink

    ids = [i.pk for i in identities]
    links = list(IdentityLink.objects.filter(left_id__in=ids).values_list("left_id", "right_id"))
    fragment_key = "cluster_id" if policy.stitches else "identity_id"
    fragments = list(ProfileFragment.objects.filter(**{fragment_key: profile.entity_id})
                     .select_related("dataset", "identity").order_by("dataset__name", "pk"))
    events = Event.objects.filter(**{fragment_key: profile.entity_id})
    if policy.event_datasets:
        events = events.filter(dataset_id__in=policy.event_datasets)
    recent = list(events.select_related("dataset").order_by("-timestamp", "-pk")[:events_limit])
    memberships = list(Membership.objects.filter(profile=profile)
                       .select_related("definition").order_by("definition__name"))
    return ProfileView(profile, policy, identities, links, fragments, recent, memberships)


# --- XIDs: opaque, stable ids for identities and merged profiles (Profile Access) ----------


def identity_xid(namespace: str, value: str) -> str:
    """An identity's XID: URL-safe base64 of `namespace NUL value` (decodable, no look-up)."""
    raw = f"{namespace}\x00{value}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def xid_identity(xid: str) -> tuple[str, str] | None:
    """(namespace, value) of an XID, or None when `xid` is not one."""
    try:
        raw = base64.urlsafe_b64decode(xid + "=" * (-len(xid) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    namespace, sep, value = raw.partition("\x00")
    return (namespace, value) if sep and namespace and value else None


def profile_xid(view: ProfileView) -> str:
    """A merged profile's id: the XID of its representative (smallest-id) identity."""
    first = min(view.identities, key=lambda i: i.pk)
    return identity_xid(first.namespace, first.value)


def schema_fields(*, class_name: str | None = None):
    """The schema catalogue discovered from ingested data (Segment Builder's attribute and
    event trees): paths in order, with type, example values and how often each was seen."""
    from audiences.models import SchemaField

    fields = SchemaField.objects.all()
    if class_name:
        fields = fields.filter(class_name=class_name)
    return fields.order_by("class_name", "path")
