"""Edge segmentation: answer, for one identity and optionally the event it just produced, which
edge audiences the profile is in — synchronously, in milliseconds, with no job and no queue.

1. The event, if given, is ingested first (source "edge"), so it counts and is kept.
2. The profile is read under the sandbox's active-on-edge merge policy (edge audiences must use
   it). An unknown identity is an empty profile plus the event, not an error.
3. Every published edge definition is evaluated with the same compiled queries streaming uses;
   transitions are recorded through the one membership write path (source "edge").
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from audiences.models import EVENT_CLASS, Dataset, Membership, MergePolicy, Profile, Source
from audiences.services.profiles import profile_for_identity
from audiences.services.streaming import evaluate_work, streaming_index
from portal.errors import ErrorCode, SiftError
from portal.scope import current_sandbox

EDGE_DATASET_NAME = "Edge Network events"


@dataclass(frozen=True)
class EdgeAnswer:
    profile: Profile | None
    segments: list[dict]
    evaluated: int
    event_id: str | None


def edge_merge_policy() -> MergePolicy:
    policy = MergePolicy.objects.filter(is_active_on_edge=True).first()
    if policy is None:
        raise SiftError(ErrorCode.INVALID,
                        "This sandbox has no active-on-edge merge policy; edge evaluation "
                        "needs one (Merge policies → Active on edge).", status=409)
    return policy


def _edge_dataset() -> Dataset:
    dataset = Dataset.objects.filter(class_name=EVENT_CLASS, name=EDGE_DATASET_NAME).first()
    if dataset is None:
        dataset = Dataset.objects.create(
            name=EDGE_DATASET_NAME, class_name=EVENT_CLASS,
            description="Events sent with edge evaluation requests.",
            schema_ref={"id": "https://ns.adobe.com/xdm/context/experienceevent"},
            tags={"unifiedProfile": ["enabled:true"], "unifiedIdentity": ["enabled:true"]})
    return dataset


def edge_evaluate(*, namespace: str, identity: str, event: dict | None, now: datetime,
                  dataset_id: str | None = None) -> EdgeAnswer:
    if not namespace or not identity:
        raise SiftError(ErrorCode.INVALID, "identity.namespace and identity.id are required.")
    policy = edge_merge_policy()
    event_id = None
    if event is not None:
        event_id = _ingest_event(namespace=namespace, identity=identity, event=event, now=now,
                                 dataset_id=dataset_id)
    profile = profile_for_identity(merge_policy=policy, namespace=namespace, value=identity)
    index = streaming_index(sandbox=current_sandbox(), method="edge")
    definitions = [c for c in index.compiled.values() if c.merge_policy_id == policy.pk]
    if profile is None:
        # Nothing stored for this identity (and no event): an empty profile qualifies for
        # whatever an empty profile qualifies for, but there is no one to record it on.
        answers = [c for c in definitions if c.query.evaluate({}, [], now=now)]
        return EdgeAnswer(None, [{"id": c.id, "status": "realized",
                                  "lastQualificationTime": now.isoformat()} for c in answers],
                          len(definitions), event_id)
    # The same loop as streaming: the profile locked, read once, evaluated level by level
    # (inSegment), and only what changes written, in one transaction.
    evaluate_work(index=index, work={c.id: {profile.pk} for c in definitions}, now=now,
                  source=Source.EDGE)
    edge_ids = {c.id for c in definitions}
    rows = (Membership.objects.filter(profile=profile, definition_id__in=edge_ids,
                                      status__in=("realized", "existing"))
            .values_list("definition_id", "status", "last_qualification_time"))
    return EdgeAnswer(profile, [{"id": str(d), "status": status,
                                 "lastQualificationTime": at.isoformat()}
                                for d, status, at in rows], len(definitions), event_id)


def _ingest_event(*, namespace: str, identity: str, event: dict, now: datetime,
                  dataset_id: str | None) -> str:
    from audiences.services.ingest import ingest_records

    dataset = (Dataset.objects.filter(pk=dataset_id, class_name=EVENT_CLASS).first()
               if dataset_id else _edge_dataset())
    if dataset is None:
        raise SiftError(ErrorCode.NOT_FOUND, f"Event dataset {dataset_id} does not exist.")
    record = dict(event)
    record.setdefault("_id", str(uuid.uuid4()))
    record.setdefault("timestamp", now.isoformat())
    identity_map = {k: list(v) for k, v in (record.get("identityMap") or {}).items()}
    entries = identity_map.setdefault(namespace, [])
    if not any(e.get("id") == identity for e in entries):
        entries.append({"id": identity, "primary": not any(
            e.get("primary") for values in identity_map.values() for e in values)})
    record["identityMap"] = identity_map
    result = ingest_records(dataset=dataset, records=[record], now=now, source="edge")
    if result.rejected:
        index, reason = result.rejected[0]
        raise SiftError(ErrorCode.INVALID_RECORD, f"The event was rejected: {reason}",
                        {"index": index, "reason": reason})
    return record["_id"]
