"""Memberships: the one write path for who is in which audience.

Every evaluator (streaming, edge, batch, uploads, identity merges) ends here, so the rules of a
transition live in one place:

1. qualified and not currently in (no row, or `exited`)  -> `realized`, lastQualificationTime = at
2. qualified and already in (`realized` / `existing`)     -> unchanged (streaming/edge keep the
   status; only a batch job turns `realized` into `existing`, see `batch_status_for`)
3. not qualified and currently in                         -> `exited`, lastQualificationTime = at
4. not qualified and not in                               -> nothing

Each status change appends one `MembershipChange` in the same transaction, and the denormalised
counters on the definition move by the same deltas. Applying the same result twice changes
nothing the second time, so at-least-once task delivery never double-counts. After commit, the
consumers named in `settings.SIFT_MEMBERSHIP_CONSUMERS` (destinations, ...) are told which change
ids were recorded.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Count, F, IntegerField, Max, Q, Value, When
from django.db.models.expressions import RawSQL
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.module_loading import import_string

from audiences.models import (
    QUALIFIED,
    Membership,
    MembershipChange,
    Profile,
    SegmentDefinition,
    Source,
    Status,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChangesRecorded:
    """Announcement: change-log rows `first_id..last_id` of one sandbox were committed."""

    sandbox_id: int
    change_ids: tuple[int, ...]
    source: str
    job_id: str | None = None


def _counter_field(status: str) -> str:
    return {Status.REALIZED: "realized_count", Status.EXISTING: "existing_count",
            Status.EXITED: "exited_count"}[status]


def _profile_key(profile: Profile) -> str:
    return f"{profile.primary_namespace}:{profile.primary_id}"


def membership_apply(*, definition: SegmentDefinition, results: Mapping[int, bool], at: datetime,
                     source: str, recheck_at: Mapping[int, datetime | None] | None = None,
                     job_id=None) -> list[MembershipChange]:
    """Apply per-profile evaluation results (profile id -> qualifies) for one definition.

    `recheck_at` (streaming) records, per qualifying profile, when a time window may lapse; a
    sweep re-evaluates the profile then. Returns the change rows it appended.
    """
    applied = membership_apply_many(work=[(definition, results, recheck_at or {})], at=at,
                                    source=source, job_id=job_id)
    return applied.get(definition.pk, [])


def membership_apply_many(*, work: Sequence[tuple[SegmentDefinition, Mapping[int, bool],
                                                  Mapping[int, datetime | None]]],
                          at: datetime, source: str, job_id=None
                          ) -> dict[Any, list[MembershipChange]]:
    """`membership_apply` for several definitions in one transaction and a constant number of
    queries (streaming evaluates many definitions per change). Returns definition pk -> the
    change rows appended for it."""
    work = [(d, r, c) for d, r, c in work if r]
    if not work:
        return {}
    all_profiles = {pid for _, results, _ in work for pid in results}
    with transaction.atomic():
        existing = {(m.definition_id, m.profile_id): m for m in
                    Membership.objects.select_for_update().filter(
                        definition_id__in=[d.pk for d, _, _ in work],
                        profile_id__in=list(all_profiles))}
        need_profiles = {pid for definition, results, _ in work for pid, ok in results.items()
                         if _transition(existing.get((definition.pk, pid)), ok)}
        profiles = Profile.objects.in_bulk(list(need_profiles)) if need_profiles else {}
        to_create: list[Membership] = []
        to_update: list[Membership] = []
        recheck_only: list[Membership] = []
        changes: dict[Any, list[MembershipChange]] = {}
        deltas: dict[Any, Counter] = {}
        for definition, results, recheck_at in work:
            made, moved = _apply_one(definition, results, recheck_at, existing, profiles, at,
                                     source, job_id, to_create, to_update, recheck_only)
            if made:
                changes[definition.pk] = made
                deltas[definition.pk] = moved
        _apply_deltas_many(deltas, at)
        if to_create:
            Membership.objects.bulk_create(to_create)
        if to_update:
            Membership.objects.bulk_update(
                to_update, ["status", "last_qualification_time", "source", "version",
                            "recheck_at", "updated_at"])
        if recheck_only:
            Membership.objects.bulk_update(recheck_only, ["recheck_at"])
        every = [change for made in changes.values() for change in made]
        if every:
            MembershipChange.objects.bulk_create(every)
            _announce(work[0][0].sandbox_id, every, source, job_id)
    return changes


def _transition(membership: Membership | None, qualifies: bool) -> bool:
    """Does this result change the membership's status?"""
    if qualifies:
        return membership is None or membership.status == Status.EXITED
    return membership is not None and membership.is_active


def _apply_one(definition, results, recheck_at, existing, profiles, at, source, job_id,
               to_create, to_update, recheck_only) -> tuple[list[MembershipChange], Counter]:
    changes: list[MembershipChange] = []
    deltas: Counter = Counter()
    for profile_id, qualifies in results.items():
        membership = existing.get((definition.pk, profile_id))
        lapse = recheck_at.get(profile_id) if qualifies else None
        if qualifies and (membership is None or membership.status == Status.EXITED):
            old = membership.status if membership else ""
            if membership is None:
                if profile_id not in profiles:
                    continue  # the profile vanished (identity merge) since it was evaluated
                membership = Membership(
                    sandbox_id=definition.sandbox_id, definition=definition,
                    profile_id=profile_id, status=Status.REALIZED,
                    last_qualification_time=at, source=source, version=definition.version,
                    recheck_at=lapse, updated_at=at)
                to_create.append(membership)
            else:
                membership.status = Status.REALIZED
                membership.last_qualification_time = at
                membership.source = source
                membership.version = definition.version
                membership.recheck_at = lapse
                membership.updated_at = at
                to_update.append(membership)
                deltas[_counter_field(Status.EXITED)] -= 1
            deltas["qualified_count"] += 1
            deltas[_counter_field(Status.REALIZED)] += 1
            changes.append(_change(definition, profiles.get(profile_id), profile_id, old,
                                   Status.REALIZED, at, source, job_id))
        elif not qualifies and membership is not None and membership.is_active:
            old = membership.status
            membership.status = Status.EXITED
            membership.last_qualification_time = at
            membership.source = source
            membership.recheck_at = None
            membership.updated_at = at
            to_update.append(membership)
            deltas["qualified_count"] -= 1
            deltas[_counter_field(old)] -= 1
            deltas[_counter_field(Status.EXITED)] += 1
            changes.append(_change(definition, profiles.get(profile_id), profile_id, old,
                                   Status.EXITED, at, source, job_id))
        elif qualifies and membership is not None and membership.recheck_at != lapse:
            membership.recheck_at = lapse
            recheck_only.append(membership)
    return changes, deltas


def _change(definition, profile, profile_id, old, new, at, source, job_id) -> MembershipChange:
    return MembershipChange(
        sandbox_id=definition.sandbox_id, definition=definition, profile_id=profile_id,
        profile_key=_profile_key(profile) if profile is not None else "",
        old_status=old, new_status=new, at=at, source=source, job_id=job_id)


def _apply_deltas(definition: SegmentDefinition, deltas: Counter, at: datetime) -> None:
    # Never below zero: after a batch job `exited_count` counts that job's exits only (the
    # portal's breakdown), so a later re-entry of someone who left earlier must not underflow.
    updates = {field: Greatest(F(field) + delta, Value(0)) for field, delta in deltas.items()
               if delta}
    if updates:
        SegmentDefinition.objects.filter(pk=definition.pk).update(**updates, counts_updated_at=at)


def _apply_deltas_many(deltas: Mapping[Any, Counter], at: datetime) -> None:
    """Move the counters of several definitions by their deltas in one UPDATE."""
    if len(deltas) <= 1:
        for pk, moved in deltas.items():
            _apply_deltas(SegmentDefinition(pk=pk), moved, at)
        return
    fields = {field for moved in deltas.values() for field, delta in moved.items() if delta}
    updates = {field: Greatest(F(field) + Case(*[When(pk=pk, then=Value(moved.get(field, 0)))
                                                 for pk, moved in deltas.items()],
                                               default=Value(0), output_field=IntegerField()),
                               Value(0))
               for field in fields}
    SegmentDefinition.objects.filter(pk__in=list(deltas)).update(**updates, counts_updated_at=at)


def _announce(sandbox_id: int, changes: list[MembershipChange], source: str, job_id) -> None:
    # bulk_create sets primary keys on both PostgreSQL and SQLite (RETURNING).
    ids = tuple(c.pk for c in changes)
    announcement = ChangesRecorded(sandbox_id=sandbox_id, change_ids=ids, source=source,
                                   job_id=str(job_id) if job_id else None)
    transaction.on_commit(lambda: changes_announce(announcement))


def changes_announce(announcement: ChangesRecorded) -> None:
    """Tell every configured consumer about committed change-log rows."""
    for path in getattr(settings, "SIFT_MEMBERSHIP_CONSUMERS", []):
        try:
            import_string(path)(announcement=announcement)
        except Exception:  # one failing consumer must not hide the change from the others
            log.exception("membership consumer %s failed", path)


def counts_refresh(*, definition_ids: Iterable, since: datetime | None = None,
                   at: datetime) -> None:
    """Recount the denormalised counters exactly (after a batch job, or to repair drift).

    `exited_count` counts exits since `since` (the job's snapshot), as the portal's breakdown
    shows realized / existing / exited since the last batch job.
    """
    definition_ids = list(definition_ids)
    exited_filter = Q(status=Status.EXITED)
    if since is not None:
        exited_filter &= Q(last_qualification_time__gte=since)
    rows = (Membership.objects.filter(definition_id__in=definition_ids)
            .values("definition_id")
            .annotate(realized=Count("id", filter=Q(status=Status.REALIZED)),
                      existing=Count("id", filter=Q(status=Status.EXISTING)),
                      exited=Count("id", filter=exited_filter)))
    found = {row["definition_id"]: row for row in rows}
    for definition_id in definition_ids:
        row = found.get(definition_id, {"realized": 0, "existing": 0, "exited": 0})
        SegmentDefinition.objects.filter(pk=definition_id).update(
            realized_count=row["realized"], existing_count=row["existing"],
            exited_count=row["exited"], qualified_count=row["realized"] + row["existing"],
            counts_updated_at=at)


def profile_segment_ids(*, profile_ids: Iterable[int]) -> dict[int, frozenset[str]]:
    """Ids of the audiences each profile currently belongs to (for `inSegment`)."""
    out: dict[int, set[str]] = {}
    rows = Membership.objects.filter(profile_id__in=list(profile_ids),
                                     status__in=QUALIFIED).values_list("profile_id",
                                                                       "definition_id")
    for profile_id, definition_id in rows:
        out.setdefault(profile_id, set()).add(str(definition_id))
    return {pid: frozenset(ids) for pid, ids in out.items()}


def exit_profiles(*, profile_ids: Iterable[int], at: datetime, source: str = Source.SYSTEM
                  ) -> int:
    """Exit every active membership of profiles that are about to disappear (graph merges)."""
    by_definition: dict = {}
    for membership in (Membership.objects.filter(profile_id__in=list(profile_ids),
                                                 status__in=QUALIFIED)
                       .select_related("definition")):
        by_definition.setdefault(membership.definition, {})[membership.profile_id] = False
    total = 0
    for definition, results in by_definition.items():
        total += len(membership_apply(definition=definition, results=results, at=at,
                                      source=source))
    return total


SET_CHUNK = 5000


@dataclass(frozen=True)
class SetApplied:
    """What one set-wise batch write did to one definition's memberships."""

    qualified: int
    realized: int
    existing: int
    exited: int
    changes: int


def _chunks(ids: list, size: int = SET_CHUNK):
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def batch_status_for(*, status: str, last_qualification_time: datetime, at: datetime) -> str:
    """A member that still qualifies at a later batch snapshot becomes `existing`; one that
    entered at this very snapshot stays `realized`, so re-running a snapshot changes nothing."""
    if status == Status.REALIZED and last_qualification_time >= at:
        return Status.REALIZED
    return Status.EXISTING


def membership_apply_set(*, definition: SegmentDefinition, qualifying: Iterable[int],
                         at: datetime, source: str = Source.BATCH, job_id=None) -> SetApplied:
    """Make the definition's memberships equal to `qualifying` at the snapshot `at`.

    The set-wise twin of `membership_apply`, with the same change-log rules, for a whole
    population at once (a batch job):

    1. newly qualifying (no row, or `exited`)  -> `realized`, lastQualificationTime = at
    2. still qualifying, entered before `at`   -> `existing`, lastQualificationTime = at
    3. members that no longer qualify          -> `exited`, lastQualificationTime = at
    4. every status change appends one `MembershipChange`; the counters are recounted.

    A second call with the same set and the same `at` finds nothing to change. The caller owns
    the transaction (one per definition, so a killed worker leaves nothing half-written).
    """
    wanted = set(qualifying)
    current = {pid: (status, lqt) for pid, status, lqt in Membership.objects.filter(
        definition=definition).values_list("profile_id", "status", "last_qualification_time")}
    enter_new = [pid for pid in wanted if pid not in current]
    reenter = [pid for pid in wanted if pid in current and current[pid][0] == Status.EXITED]
    to_existing = [pid for pid in wanted if pid in current and current[pid][0] in QUALIFIED
                   and batch_status_for(status=current[pid][0],
                                        last_qualification_time=current[pid][1],
                                        at=at) == Status.EXISTING
                   and (current[pid][0] != Status.EXISTING or current[pid][1] < at)]
    leave = [pid for pid, (status, _) in current.items()
             if pid not in wanted and status in QUALIFIED]
    keys = _profile_keys(enter_new + reenter + leave
                         + [p for p in to_existing if current[p][0] == Status.REALIZED])
    # A profile deleted (or merged away) since the query ran has no key, and cannot enter.
    enter_new = [pid for pid in enter_new if pid in keys]
    changes: list[tuple] = []
    _insert_rows(Membership, {
        "sandbox_id": definition.sandbox_id, "definition_id": definition.pk,
        "status": Status.REALIZED, "last_qualification_time": at, "source": source,
        "version": definition.version, "updated_at": at}, "profile_id", enter_new)
    changes += [(pid, "", Status.REALIZED) for pid in enter_new]
    _set_status(definition, reenter, Status.REALIZED, at, source)
    changes += [(pid, Status.EXITED, Status.REALIZED) for pid in reenter]
    _set_status(definition, to_existing, Status.EXISTING, at, source)
    changes += [(pid, Status.REALIZED, Status.EXISTING) for pid in to_existing
                if current[pid][0] == Status.REALIZED]
    _set_status(definition, leave, Status.EXITED, at, source)
    changes += [(pid, current[pid][0], Status.EXITED) for pid in leave]
    if changes:
        _record_changes(definition, keys, changes, at=at, source=source, job_id=job_id)
    counts_refresh(definition_ids=[definition.pk], since=at, at=at)
    still = sum(1 for pid in wanted if pid in current and current[pid][0] in QUALIFIED)
    entered = len(enter_new) + len(reenter)
    return SetApplied(qualified=entered + still, realized=entered, existing=still,
                      exited=len(leave), changes=len(changes))


def _id_filters(field: str, ids: list[int]):
    """Q objects selecting `field IN ids`, for id lists of any length: one array parameter
    joined as a set on PostgreSQL (thousands of literal parameters plan badly), bounded
    chunks on SQLite (its parameter limit)."""
    if not ids:
        return
    if connection.vendor == "postgresql":
        yield Q(**{f"{field}__in": RawSQL("SELECT unnest(%s::bigint[])", (list(ids),))})
        return
    for chunk in _chunks(ids):
        yield Q(**{f"{field}__in": chunk})


def _profile_keys(ids: list[int]) -> dict[int, str]:
    keys: dict[int, str] = {}
    for condition in _id_filters("pk", ids):
        for pid, ns, value in Profile.objects.filter(condition).values_list(
                "pk", "primary_namespace", "primary_id").iterator(chunk_size=SET_CHUNK):
            keys[pid] = f"{ns}:{value}"
    return keys


def _set_status(definition: SegmentDefinition, ids: list[int], status: str, at: datetime,
                source: str) -> None:
    fields = {"status": status, "last_qualification_time": at, "source": source,
              "updated_at": at, "recheck_at": None}
    if status == Status.REALIZED:
        fields["version"] = definition.version
    for condition in _id_filters("profile_id", ids):
        Membership.objects.filter(condition, definition=definition).update(**fields)


def _insert_rows(model, constants: dict, varying: str | tuple, rows: list) -> None:
    """INSERT many rows through one prepared statement (`executemany`): the ORM's
    bulk_create spends most of a batch job building per-row SQL. `constants` are the same on
    every row (prepared once); `varying` names the column(s) each row supplies."""
    if not rows:
        return
    varying = (varying,) if isinstance(varying, str) else varying
    fields = {f.attname: f for f in model._meta.concrete_fields}
    prepared = tuple(fields[name].get_db_prep_save(value, connection)
                     for name, value in constants.items())
    columns = [*constants, *varying]
    quote = connection.ops.quote_name
    sql = (f"INSERT INTO {quote(model._meta.db_table)} "
           f"({', '.join(quote(fields[c].column) for c in columns)}) "
           f"VALUES ({', '.join(['%s'] * len(columns))})")
    single = len(varying) == 1
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY is several times faster than pipelined INSERTs (TOOLING.md).
            names = ", ".join(quote(fields[c].column) for c in columns)
            with cursor.cursor.copy(f"COPY {quote(model._meta.db_table)} ({names}) "
                                    "FROM STDIN") as copy:
                for row in rows:
                    copy.write_row((*prepared, row) if single else (*prepared, *row))
            return
        for chunk in _chunks(rows, 20_000):
            cursor.executemany(sql, [(*prepared, row) if single else (*prepared, *row)
                                     for row in chunk])


def _record_changes(definition: SegmentDefinition, keys: dict, changes: list[tuple], *,
                    at: datetime, source: str, job_id) -> None:
    """Append the change-log rows and announce their ids after commit (ids only grow, so
    the rows of this call are those above the previous maximum)."""
    before = MembershipChange.objects.unscoped().aggregate(top=Max("id"))["top"] or 0
    _insert_rows(MembershipChange, {
        "sandbox_id": definition.sandbox_id, "definition_id": definition.pk, "at": at,
        "source": source, "job_id": job_id, "recorded_at": timezone.now()},
        ("profile_id", "profile_key", "old_status", "new_status"),
        [(pid, keys.get(pid, ""), old, new) for pid, old, new in changes])
    ids = tuple(MembershipChange.objects.filter(
        definition=definition, id__gt=before, at=at).order_by("id").values_list("id", flat=True))
    announcement = ChangesRecorded(sandbox_id=definition.sandbox_id, change_ids=ids,
                                   source=source, job_id=str(job_id) if job_id else None)
    transaction.on_commit(lambda: changes_announce(announcement))
