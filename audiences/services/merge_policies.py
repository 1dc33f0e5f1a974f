"""Merge policies: create, update, delete, default and active-on-edge, and the rebuild of their
merged profiles.

Rules (shared/aep-reference.md Part B §6.3):
1. At most `settings.SIFT_MAX_MERGE_POLICIES` (5) per sandbox.
2. Exactly one default per sandbox: making one default clears the old one; the default cannot
   be deleted or un-defaulted directly (make another one default instead).
3. At most one active on edge: making one active clears the old one; a policy active on edge
   cannot be deleted (unset it first, as AEP requires).
4. A policy used by a segment definition cannot be deleted.
5. `dataSetPrecedence` needs an ordered list of this sandbox's profile datasets; event
   datasets, when listed, restrict which events count.
6. Creating a policy, or changing how it merges, rebuilds its profiles from the stored fragments
   in a Celery task, chunk by chunk, recording `rebuild_progress`. Each change bumps `version`;
   a rebuild that sees a newer version stops (the newer one takes over).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from audiences.models import (
    EVENT_CLASS,
    PROFILE_CLASS,
    Dataset,
    Event,
    Identity,
    MergePolicy,
    Profile,
    ProfileFragment,
    SegmentDefinition,
)
from audiences.services.profiles import profiles_refresh
from portal.errors import ErrorCode, SiftError

MAX_ORDERED_DATASETS = 50
REBUILD_CHUNK = 1000
MERGE_FIELDS = ("identity_graph", "attribute_merge", "dataset_order", "event_datasets")


def _choice(value: Any, choices, field: str) -> str:
    if value not in choices.values:
        raise SiftError(ErrorCode.INVALID, f"{field} must be one of {', '.join(choices.values)};"
                        f" got {str(value)[:50]!r}.", {"field": field})
    return value


def _dataset_ids(values: Iterable | None, *, class_name: str, field: str) -> list[str]:
    ids = [str(v) for v in (values or [])]
    if len(ids) > MAX_ORDERED_DATASETS:
        raise SiftError(ErrorCode.INVALID, f"{field} lists {len(ids)} datasets; at most "
                        f"{MAX_ORDERED_DATASETS} are allowed.", {"field": field})
    if len(set(ids)) != len(ids):
        raise SiftError(ErrorCode.INVALID, f"{field} lists a dataset twice.", {"field": field})
    known = set(Dataset.objects.filter(pk__in=ids, class_name=class_name)
                .values_list("pk", flat=True))
    unknown = [i for i in ids if i not in known]
    if unknown:
        kind = "profile" if class_name == PROFILE_CLASS else "experience event"
        raise SiftError(ErrorCode.INVALID, f"{field}: {', '.join(unknown[:5])} "
                        f"{'is not a' if len(unknown) == 1 else 'are not'} {kind} dataset"
                        f"{'' if len(unknown) == 1 else 's'} of this sandbox.",
                        {"field": field, "datasets": unknown[:20]})
    return ids


def _validate(fields: dict) -> dict:
    fields["identity_graph"] = _choice(fields["identity_graph"], MergePolicy.IdentityGraph,
                                       "identityGraph.type")
    fields["attribute_merge"] = _choice(fields["attribute_merge"], MergePolicy.AttributeMerge,
                                        "attributeMerge.type")
    if fields["attribute_merge"] == MergePolicy.AttributeMerge.DATASET_PRECEDENCE:
        fields["dataset_order"] = _dataset_ids(fields.get("dataset_order"),
                                               class_name=PROFILE_CLASS,
                                               field="attributeMerge.order")
        if not fields["dataset_order"]:
            raise SiftError(ErrorCode.INVALID, "attributeMerge.order must list at least one "
                            "profile dataset when the type is dataSetPrecedence.",
                            {"field": "attributeMerge.order"})
    else:
        fields["dataset_order"] = []
    fields["event_datasets"] = _dataset_ids(fields.get("event_datasets"),
                                            class_name=EVENT_CLASS, field="eventDatasets")
    name = (fields.get("name") or "").strip()
    if not name or len(name) > 200:
        raise SiftError(ErrorCode.INVALID, "name is required (at most 200 characters).",
                        {"field": "name"})
    fields["name"] = name
    return fields


def _claim_default(policy: MergePolicy) -> None:
    MergePolicy.objects.filter(is_default=True).exclude(pk=policy.pk).update(is_default=False)


def _claim_edge(policy: MergePolicy) -> None:
    MergePolicy.objects.filter(is_active_on_edge=True).exclude(pk=policy.pk).update(
        is_active_on_edge=False)


def _save(policy: MergePolicy) -> None:
    try:
        with transaction.atomic():
            policy.save()
    except IntegrityError:
        raise SiftError(ErrorCode.ALREADY_EXISTS,
                        f"A merge policy named {policy.name!r} already exists in this sandbox.",
                        {"field": "name"}) from None


def merge_policy_create(*, name: str, identity_graph: str = "pdg",
                        attribute_merge: str = "timestampOrdered",
                        dataset_order: list[str] | None = None,
                        event_datasets: list[str] | None = None, is_default: bool = False,
                        is_active_on_edge: bool = False, now: datetime,
                        user: Any = None) -> MergePolicy:
    """Create a policy and rebuild its profiles from the stored fragments (rule 6)."""
    with transaction.atomic():
        limit = settings.SIFT_MAX_MERGE_POLICIES
        if MergePolicy.objects.select_for_update().count() >= limit:
            raise SiftError(ErrorCode.LIMIT_EXCEEDED,
                            f"This sandbox already has {limit} merge policies, the maximum; "
                            "delete one first.", {"limit": limit}, status=422)
        fields = _validate({"name": name, "identity_graph": identity_graph,
                            "attribute_merge": attribute_merge, "dataset_order": dataset_order,
                            "event_datasets": event_datasets})
        first = not MergePolicy.objects.exists()
        policy = MergePolicy(**fields, is_default=bool(is_default) or first,
                             is_active_on_edge=bool(is_active_on_edge), created_by=user,
                             rebuild_state=MergePolicy.RebuildState.REBUILDING,
                             rebuild_progress={"done": 0, "total": 0,
                                               "requested_at": now.isoformat()})
        if policy.is_default:
            _claim_default(policy)
        if policy.is_active_on_edge:
            _claim_edge(policy)
        _save(policy)
        _enqueue_rebuild(policy)
    return policy


def merge_policy_update(*, merge_policy: MergePolicy, changes: dict, now: datetime
                        ) -> MergePolicy:
    """Apply `changes` (model field names: name, identity_graph, attribute_merge, dataset_order,
    event_datasets, is_default, is_active_on_edge). Merge changes trigger a rebuild."""
    allowed = {"name", "is_default", "is_active_on_edge", *MERGE_FIELDS}
    unknown = set(changes) - allowed
    if unknown:
        raise SiftError(ErrorCode.INVALID, f"Cannot change {', '.join(sorted(unknown))}.",
                        {"fields": sorted(unknown)})
    with transaction.atomic():
        policy = MergePolicy.objects.select_for_update().get(pk=merge_policy.pk)
        before = {f: getattr(policy, f) for f in MERGE_FIELDS}
        fields = _validate({"name": changes.get("name", policy.name),
                            **{f: changes.get(f, getattr(policy, f)) for f in MERGE_FIELDS}})
        for key, value in fields.items():
            setattr(policy, key, value)
        if "is_default" in changes:
            if not changes["is_default"] and policy.is_default:
                raise SiftError(ErrorCode.DEFAULT_MERGE_POLICY,
                                "A sandbox always has one default merge policy: make another "
                                "policy the default instead.")
            policy.is_default = bool(changes["is_default"])
            if policy.is_default:
                _claim_default(policy)
        if "is_active_on_edge" in changes:
            policy.is_active_on_edge = bool(changes["is_active_on_edge"])
            if policy.is_active_on_edge:
                _claim_edge(policy)
        policy.version += 1
        rebuild = any(getattr(policy, f) != before[f] for f in MERGE_FIELDS)
        if policy.identity_graph != before["identity_graph"]:
            # Entities change meaning (graph vs identity): start from nothing.
            Profile.objects.filter(merge_policy=policy).delete()
        if rebuild:
            policy.rebuild_state = MergePolicy.RebuildState.REBUILDING
            policy.rebuild_progress = {"done": 0, "total": 0, "requested_at": now.isoformat()}
        _save(policy)
        if rebuild:
            _enqueue_rebuild(policy)
    return policy


def merge_policy_make_default(*, merge_policy: MergePolicy, now: datetime) -> MergePolicy:
    return merge_policy_update(merge_policy=merge_policy, changes={"is_default": True}, now=now)


def merge_policy_set_edge(*, merge_policy: MergePolicy, active: bool, now: datetime
                          ) -> MergePolicy:
    return merge_policy_update(merge_policy=merge_policy,
                               changes={"is_active_on_edge": active}, now=now)


def merge_policy_delete(*, merge_policy: MergePolicy) -> None:
    if merge_policy.is_default:
        raise SiftError(ErrorCode.DEFAULT_MERGE_POLICY,
                        "The default merge policy cannot be deleted: make another policy the "
                        "default first.")
    if merge_policy.is_active_on_edge:
        raise SiftError(ErrorCode.ACTIVE_ON_EDGE,
                        "A merge policy active on edge cannot be deleted: set isActiveOnEdge "
                        "to false first.")
    used = list(SegmentDefinition.objects.filter(merge_policy=merge_policy)
                .values_list("name", flat=True)[:5])
    if used:
        raise SiftError(ErrorCode.MERGE_POLICY_IN_USE,
                        f"The merge policy is used by segment definitions ({', '.join(used)}); "
                        "move them to another policy first.", {"definitions": used})
    merge_policy.delete()


# --- Rebuild -------------------------------------------------------------------------------


def _enqueue_rebuild(policy: MergePolicy) -> None:
    from audiences.tasks import merge_policy_rebuild as task

    policy_id, version = str(policy.pk), policy.version
    transaction.on_commit(lambda: task.delay(policy_id, version))


def _entity_chunks(policy: MergePolicy, size: int) -> Iterable[list[int]]:
    """Entity ids (graph ids or identity ids) in ascending order, a chunk at a time (keyset)."""
    column = "cluster_id" if policy.stitches else "pk"
    last = -1
    while True:
        chunk = list(Identity.objects.filter(**{f"{column}__gt": last}).order_by(column)
                     .values_list(column, flat=True).distinct()[:size])
        if not chunk:
            return
        yield chunk
        last = chunk[-1]


def merge_policy_rebuild(*, merge_policy_id: Any, version: int, now: datetime,
                         chunk_size: int = REBUILD_CHUNK) -> str:
    """Recompute every profile of one policy; returns the final state (or "SUPERSEDED")."""
    policy = MergePolicy.objects.filter(pk=merge_policy_id).first()
    if policy is None or policy.version != version:
        return "SUPERSEDED"
    column = "cluster_id" if policy.stitches else "pk"
    total = Identity.objects.values(column).distinct().count()
    key = "cluster_id" if policy.stitches else "identity_id"
    done = 0
    for chunk in _entity_chunks(policy, chunk_size):
        present = set(ProfileFragment.objects.filter(**{f"{key}__in": chunk})
                      .values_list(key, flat=True))
        present |= set(Event.objects.filter(**{f"{key}__in": chunk})
                       .values_list(key, flat=True).distinct())
        with transaction.atomic():
            profiles_refresh(policies=[policy], clusters=present if policy.stitches else (),
                             identities=() if policy.stitches else present, now=now)
            done += len(chunk)
            # Compare-and-set on the version: a newer change supersedes this run.
            if not MergePolicy.objects.filter(pk=policy.pk, version=version).update(
                    rebuild_progress={"done": done, "total": total,
                                      "requested_at": policy.rebuild_progress.get(
                                          "requested_at")}):
                return "SUPERSEDED"
    MergePolicy.objects.filter(pk=policy.pk, version=version).update(
        rebuild_state=MergePolicy.RebuildState.READY,
        rebuild_progress={"done": total, "total": total, "finished_at": now.isoformat()})
    return MergePolicy.RebuildState.READY


def merge_policy_rebuild_failed(*, merge_policy_id: Any, version: int, error: str) -> None:
    """Record a rebuild that failed for good (the task's on_failure), so it is not shown as
    rebuilding forever."""
    MergePolicy.objects.filter(pk=merge_policy_id, version=version).update(
        rebuild_state=MergePolicy.RebuildState.FAILED,
        rebuild_progress={"error": error[:500]})


def merge_policy_list():
    return MergePolicy.objects.order_by("name", "pk")
