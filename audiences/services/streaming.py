"""Streaming segmentation: re-evaluate touched profiles as data lands, exit them when windows lapse.

How a change flows:
1. Ingestion commits and announces a `ProfileChange` (profile ids, attribute paths, event types).
   `streaming_on_profiles_changed` is a consumer of that announcement: in the embedded default it
   evaluates at once, in-process; with a broker it hands the change to a worker on the
   `streaming` queue.
2. `streaming_evaluate` picks only the streaming definitions the change can affect, using an
   index of what each definition references (event types, attribute paths, segments): an event
   of a type no definition mentions costs one cached lookup and no query.
3. The touched profiles are locked (`SELECT … FOR UPDATE`, in id order), so two workers handling
   events of one profile serialise instead of losing a transition. Each profile is loaded once
   with the events inside the longest look-back the affected definitions need.
4. Results go through `membership_apply` (idempotent transitions, change log, counters). A
   qualifying profile also records `recheck_at`: the instant its time window may lapse.
5. A membership change re-evaluates the streaming definitions that reference it through
   `inSegment`, transitively; a visited set stops any loop.
6. `streaming_lapse_sweep` (Celery beat, every few seconds) re-evaluates memberships whose
   `recheck_at` has passed, so "checkout in the last 3 hours" exits on time without new data.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max

from audiences.models import (
    QUALIFIED,
    Membership,
    MembershipChange,
    Profile,
    SegmentDefinition,
    SegmentJobRun,
    Source,
)
from audiences.pql import parse
from audiences.services.memberships import membership_apply_many, profile_segment_ids
from audiences.services.profiles import profiles_load
from portal.models import Sandbox
from portal.scope import sandbox_scope

log = logging.getLogger(__name__)

# Streaming rules cap a definition's look-back at one day; definitions grandfathered from the
# older ruleset may have none, and then every stored event is read.
LAPSE_SWEEP_BATCH = 500


@dataclass(frozen=True)
class Compiled:
    """A streaming definition ready to evaluate, with the facts the index needs."""

    id: str
    definition: SegmentDefinition
    query: Any
    merge_policy_id: Any
    event_types: frozenset[str] | None  # None: any event may matter
    uses_events: bool
    profile_paths: frozenset[str]
    segment_ids: frozenset[str]
    lookback: timedelta | None

    def touched_by(self, *, attribute_paths: frozenset[str], event_types: frozenset[str]
                   ) -> bool:
        if event_types and self.uses_events and (
                self.event_types is None or self.event_types & event_types):
            return True
        return bool(attribute_paths) and any(
            _overlaps(changed, read) for changed in attribute_paths for read in self.profile_paths)


def _overlaps(a: str, b: str) -> bool:
    """Paths overlap when one is the other or a parent of it (`homeAddress` vs `homeAddress.x`)."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


@dataclass
class StreamingIndex:
    key: tuple
    compiled: dict[str, Compiled] = field(default_factory=dict)
    by_segment: dict[str, list[Compiled]] = field(default_factory=dict)
    # Dependency depth among streaming definitions: evaluate lower levels first, so a
    # definition reads the memberships its inSegment targets have just written.
    level: dict[str, int] = field(default_factory=dict)

    def affected(self, *, attribute_paths: Iterable[str], event_types: Iterable[str]
                 ) -> list[Compiled]:
        # The engine reports event types lower-cased (PQL compares them without case).
        paths, types = frozenset(attribute_paths), frozenset(t.lower() for t in event_types)
        return [c for c in self.compiled.values()
                if c.touched_by(attribute_paths=paths, event_types=types)]

    def dependents_of(self, definition_id: str) -> list[Compiled]:
        return self.by_segment.get(definition_id, [])


_index_lock = threading.Lock()
_indexes: dict[tuple[int, str], StreamingIndex] = {}


def _definitions_for(method: str):
    flag = {"streaming": "evaluation_continuous", "edge": "evaluation_synchronous"}[method]
    return SegmentDefinition.objects.filter(
        **{flag: True}, lifecycle_state=SegmentDefinition.Lifecycle.PUBLISHED
    ).exclude(expression="")


def streaming_index(*, sandbox: Sandbox, method: str = "streaming") -> StreamingIndex:
    """The compiled streaming (or edge) definitions of a sandbox, rebuilt only when one of them
    changed: one aggregate query per call, no parsing on the hot path."""
    definitions = _definitions_for(method)
    stats = definitions.aggregate(n=Count("id"), latest=Max("updated_at"),
                                  version=Max("version"))
    key = (stats["n"], stats["latest"], stats["version"])
    with _index_lock:
        cached = _indexes.get((sandbox.pk, method))
        if cached is not None and cached.key == key:
            return cached
    index = StreamingIndex(key=key)
    for definition in definitions.select_related("merge_policy"):
        try:
            query = parse(definition.expression)
        except Exception:  # a stored definition that no longer parses is reported, not fatal
            log.exception("streaming definition %s does not parse", definition.pk)
            continue
        refs = query.references
        compiled = Compiled(
            id=str(definition.pk), definition=definition, query=query,
            merge_policy_id=definition.merge_policy_id,
            event_types=(frozenset(refs.event_types) if refs.event_types is not None else None),
            uses_events=bool(refs.uses_events), profile_paths=frozenset(refs.profile_paths),
            segment_ids=frozenset(refs.segment_ids), lookback=refs.lookback)
        index.compiled[compiled.id] = compiled
        for segment_id in compiled.segment_ids:
            index.by_segment.setdefault(segment_id, []).append(compiled)
    _assign_levels(index)
    with _index_lock:
        _indexes[(sandbox.pk, method)] = index
    return index


def _assign_levels(index: StreamingIndex) -> None:
    def level(definition_id: str, seen: frozenset) -> int:
        if definition_id in index.level:
            return index.level[definition_id]
        compiled = index.compiled[definition_id]
        targets = [t for t in compiled.segment_ids if t in index.compiled and t not in seen]
        depth = 1 + max((level(t, seen | {definition_id}) for t in targets), default=-1)
        index.level[definition_id] = depth
        return depth

    for definition_id in index.compiled:
        level(definition_id, frozenset())


def lookback_of(compiled: Iterable[Compiled]) -> timedelta | None:
    """The longest look-back the definitions need (timedelta(0): no events; None: all)."""
    windows = [c.lookback for c in compiled if c.uses_events]
    if not windows:
        return timedelta(0)
    if any(w is None for w in windows):
        return None
    return max(windows)


@dataclass
class StreamingResult:
    profiles: int = 0
    evaluations: int = 0
    transitions: int = 0
    definitions: set = field(default_factory=set)


# --- entry points -------------------------------------------------------------------------


def streaming_on_profiles_changed(*, change) -> None:
    """Consumer of `services.profiles.changed`: evaluate now (embedded) or on a worker."""
    if not change.profile_ids:
        return
    eager = settings.CELERY_TASK_ALWAYS_EAGER
    payload = {
        "sandbox_id": change.sandbox_id,
        "profile_ids": sorted(change.profile_ids),
        "attribute_paths": sorted(change.attribute_paths),
        "event_types": sorted(change.event_types),
        "event_ids": sorted(change.event_ids),
        # In-process, evaluate at the change's instant (tests control the clock this way). A
        # worker evaluates at its own "now": by then later events of the profile may be
        # stored, and judging them at an older instant would flap memberships.
        "now": change.now.isoformat() if eager else None,
    }
    from audiences.tasks import streaming_evaluate as task

    if eager:
        task.apply(kwargs=payload)
    else:
        task.apply_async(kwargs=payload)


def streaming_on_memberships_changed(*, announcement) -> None:
    """Consumer of `services.memberships` announcements: when a batch job, an upload or an
    identity merge changes who is in an audience, re-evaluate the streaming definitions built
    on it with `inSegment` (streaming and edge changes already propagate in `evaluate_work`)."""
    if announcement.source in (Source.STREAMING, Source.EDGE) or not announcement.change_ids:
        return
    sandbox = Sandbox.objects.get(pk=announcement.sandbox_id)
    with sandbox_scope(sandbox):
        index = streaming_index(sandbox=sandbox)
        if not index.by_segment:
            return
        changed = (MembershipChange.objects
                   .filter(pk__gte=min(announcement.change_ids),
                           pk__lte=max(announcement.change_ids),
                           definition_id__in=list(index.by_segment))
                   .values_list("definition_id", "profile_id", "at"))
        profiles: dict[str, set[int]] = defaultdict(set)
        latest: dict[str, datetime] = {}
        for definition_id, profile_id, at in changed.iterator(chunk_size=5000):
            profiles[str(definition_id)].add(profile_id)
            latest[str(definition_id)] = max(at, latest.get(str(definition_id), at))
        # A batch job runs its definitions in dependency order: the dependents it has still
        # queued will be evaluated by the job itself, at the same snapshot, after this base.
        # (One that already ran or is running read the old members: it is re-evaluated.)
        in_job: set[str] = {str(pk) for pk in SegmentJobRun.objects.filter(
            job_id=announcement.job_id, status=SegmentJobRun.Status.QUEUED).values_list(
            "definition_id", flat=True)} if announcement.job_id else set()
    for segment_id, profile_ids in profiles.items():
        if not {c.id for c in index.dependents_of(segment_id)} - in_job:
            continue
        # Evaluated at the instant the base audience changed (a batch job's snapshot), so the
        # dependents agree with what that job saw.
        payload = {"sandbox_id": sandbox.pk, "segment_id": segment_id,
                   "profile_ids": sorted(profile_ids), "now": latest[segment_id].isoformat(),
                   "skip": sorted(in_job)}
        from audiences.tasks import streaming_dependents_evaluate as task

        if settings.CELERY_TASK_ALWAYS_EAGER:
            task.apply(kwargs=payload)
        else:
            task.apply_async(kwargs=payload)


def streaming_dependents_evaluate(*, sandbox: Sandbox, segment_id: str,
                                  profile_ids: Iterable[int], now: datetime,
                                  skip: Iterable[str] = ()) -> StreamingResult:
    """Re-evaluate the streaming definitions that reference `segment_id` for these profiles
    (except those in `skip`: a batch job evaluates them itself)."""
    with sandbox_scope(sandbox):
        index = streaming_index(sandbox=sandbox)
        ids = set(profile_ids)
        skipped = set(skip)
        work = {c.id: set(ids) for c in index.dependents_of(segment_id) if c.id not in skipped}
        return evaluate_work(index=index, work=work, now=now, source=Source.STREAMING)


def streaming_evaluate(*, sandbox: Sandbox, profile_ids: Iterable[int],
                       attribute_paths: Iterable[str], event_types: Iterable[str],
                       now: datetime, event_ids: Iterable[str] = ()) -> StreamingResult:
    """Re-evaluate the given profiles against the streaming definitions the change can affect.

    With `event_ids` (the new events of the change), a profile is only re-evaluated against
    the definitions that its own new events (or the changed attributes) can affect, not
    against every definition touched by anybody's events in the same request.
    """
    with sandbox_scope(sandbox):
        index = streaming_index(sandbox=sandbox)
        attribute_paths = frozenset(attribute_paths)
        affected = index.affected(attribute_paths=attribute_paths, event_types=event_types)
        if not affected:
            return StreamingResult()
        narrow = None
        if event_ids:
            narrow = _Narrowing(frozenset(event_ids), attribute_paths)
        return evaluate_work(index=index, work={c.id: set(profile_ids) for c in affected}, now=now,
                         source=Source.STREAMING, narrow=narrow)


def streaming_lapse_sweep(*, now: datetime, limit: int = LAPSE_SWEEP_BATCH) -> StreamingResult:
    """Re-check memberships whose time window may have lapsed (all sandboxes).

    Idempotent and claim-free: a re-check that finds the profile still qualified stores the
    next lapse instant, one that finds it out exits it; two sweepers at once only repeat work.
    """
    total = StreamingResult()
    due = (Membership.objects.unscoped().filter(recheck_at__lte=now)
           .order_by("recheck_at").values_list("sandbox_id", "definition_id", "profile_id")
           [:limit])
    by_sandbox: dict[int, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for sandbox_id, definition_id, profile_id in due:
        by_sandbox[sandbox_id][str(definition_id)].add(profile_id)
    for sandbox_id, work in by_sandbox.items():
        sandbox = Sandbox.objects.get(pk=sandbox_id)
        with sandbox_scope(sandbox):
            index = streaming_index(sandbox=sandbox)
            known = {k: v for k, v in work.items() if k in index.compiled}
            # Memberships of definitions no longer streaming: stop re-checking them.
            stale = [k for k in work if k not in index.compiled]
            if stale:
                Membership.objects.filter(definition_id__in=stale,
                                          recheck_at__lte=now).update(recheck_at=None)
            result = evaluate_work(index=index, work=known, now=now, source=Source.STREAMING)
        total.profiles += result.profiles
        total.evaluations += result.evaluations
        total.transitions += result.transitions
        total.definitions |= result.definitions
    return total


# --- the evaluation loop ------------------------------------------------------------------


@dataclass(frozen=True)
class _Narrowing:
    """Which new events and attribute paths a change brought (to narrow its work per profile)."""

    event_ids: frozenset[str]
    attribute_paths: frozenset[str]

    def work(self, work: dict[str, set[int]], index: StreamingIndex, loaded: dict
             ) -> dict[str, set[int]]:
        new_types = {pid: frozenset(str(e.get("eventType", "")).lower() for e in events
                                    if e.get("_id") in self.event_ids)
                     for pid, (_, events) in loaded.items()}
        narrowed: dict[str, set[int]] = {}
        for definition_id, pids in work.items():
            compiled = index.compiled[definition_id]
            keep = {p for p in pids if compiled.touched_by(
                attribute_paths=self.attribute_paths, event_types=new_types.get(p, frozenset()))}
            if keep:
                narrowed[definition_id] = keep
        return narrowed


def evaluate_work(*, index: StreamingIndex, work: dict[str, set[int]], now: datetime, source: str,
              narrow: _Narrowing | None = None) -> StreamingResult:
    """Evaluate `work` (definition id -> profile ids), then the inSegment dependents of every
    membership that changed, until nothing new changes."""
    result = StreamingResult()
    all_profiles = set().union(*work.values()) if work else set()
    if not all_profiles:
        return result
    with transaction.atomic():
        # Serialise per profile: a second worker with events of the same profile waits here,
        # then reads what the first one committed.
        profiles = list(Profile.objects.select_for_update().filter(pk__in=all_profiles)
                        .order_by("pk").only("pk", "merge_policy_id"))
        policy_of = {p.pk: p.merge_policy_id for p in profiles}
        result.profiles = len(profiles)
        loaded: dict[int, tuple[dict, list]] = {}
        # Load once with the longest look-back of every definition this change can reach
        # (inSegment dependents included), so no definition reads a truncated history.
        needed = [index.compiled[d] for d in _reachable(index, work)]
        _load(loaded, list(policy_of), lookback_of(needed), now)
        if narrow is not None:
            work = narrow.work(work, index, loaded)
        segments = {pid: set(ids) for pid, ids in
                    profile_segment_ids(profile_ids=list(policy_of)).items()}
        current = _memberships(list(policy_of), [c.id for c in needed])
        visited: set[tuple[str, int]] = set()
        # Level by level (a definition after the audiences it reads with inSegment); all the
        # writes of one level go to the database together.
        pending: dict[int, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
        for definition_id, pids in work.items():
            pending[index.level.get(definition_id, 0)][definition_id] |= set(pids)
        while pending:
            level = min(pending)
            writes = []
            for definition_id, pids in pending.pop(level).items():
                compiled = index.compiled.get(definition_id)
                if compiled is None:
                    continue
                pids = {p for p in pids if policy_of.get(p) == compiled.merge_policy_id
                        and (definition_id, p) not in visited}
                visited.update((definition_id, p) for p in pids)
                results, recheck = _evaluate_one(compiled, pids, loaded, segments, now)
                result.evaluations += len(results)
                # Most evaluations confirm what is stored: only write what would change.
                results = {pid: ok for pid, ok in results.items()
                           if _differs(current.get((definition_id, pid)), ok, recheck.get(pid))}
                for pid, ok in results.items():
                    current[(definition_id, pid)] = (
                        ("realized" if ok else "exited"), recheck.get(pid) if ok else None)
                if results:
                    writes.append((compiled.definition, results, recheck))
            applied = membership_apply_many(work=writes, at=now, source=source)
            for definition_pk, changes in applied.items():
                definition_id = str(definition_pk)
                result.transitions += len(changes)
                result.definitions.add(definition_id)
                for change in changes:
                    held = segments.setdefault(change.profile_id, set())
                    if change.new_status == "exited":
                        held.discard(definition_id)
                    else:
                        held.add(definition_id)
                changed_profiles = {change.profile_id for change in changes}
                for dependent in index.dependents_of(definition_id):
                    pending[index.level.get(dependent.id, 0)][dependent.id] |= changed_profiles
    return result


def _evaluate_one(compiled: Compiled, pids: set[int], loaded: dict, segments: dict,
                  now: datetime) -> tuple[dict[int, bool], dict[int, datetime | None]]:
    results: dict[int, bool] = {}
    recheck: dict[int, datetime | None] = {}
    for pid in pids:
        attributes, events = loaded.get(pid, ({}, []))
        segs = frozenset(segments.get(pid, ()))
        # profiles_load reads events ORDER BY timestamp: windows may skip older ones unread.
        qualifies = bool(compiled.query.evaluate(attributes, events, now=now, segments=segs,
                                                 events_in_order=True))
        results[pid] = qualifies
        if qualifies:
            recheck[pid] = compiled.query.recheck_at(attributes, events, now=now, segments=segs)
    return results, recheck


def _memberships(profile_ids: list[int], definition_ids: list[str]
                 ) -> dict[tuple[str, int], tuple[str, datetime | None]]:
    """(definition id, profile id) -> (status, recheck_at) of the stored memberships."""
    rows = Membership.objects.filter(profile_id__in=profile_ids,
                                     definition_id__in=definition_ids)
    return {(str(d), p): (status, recheck) for d, p, status, recheck in
            rows.values_list("definition_id", "profile_id", "status", "recheck_at")}


def _differs(stored: tuple[str, datetime | None] | None, qualifies: bool,
             recheck: datetime | None) -> bool:
    """Would applying this result change the stored membership (status or lapse instant)?"""
    active = stored is not None and stored[0] in QUALIFIED
    if qualifies != active:
        return True
    return qualifies and stored[1] != recheck


def _reachable(index: StreamingIndex, start: Iterable[str]) -> set[str]:
    """`start` and every streaming definition that depends on one of them, transitively."""
    seen: set[str] = set()
    stack = [d for d in start if d in index.compiled]
    while stack:
        definition_id = stack.pop()
        if definition_id in seen:
            continue
        seen.add(definition_id)
        stack.extend(c.id for c in index.dependents_of(definition_id))
    return seen


def _load(loaded: dict, profile_ids: list[int], lookback: timedelta | None, now: datetime
          ) -> None:
    if not profile_ids:
        return
    loaded.update(profiles_load(profile_ids=profile_ids, lookback=lookback, now=now))
