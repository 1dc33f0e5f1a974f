"""Schedules: Quartz cron expressions that start segment jobs and exports (Celery beat).

Quartz (AEP's syntax) has seconds first, `?` for "no specific value", an optional year, and
numbers days of the week 1-7 from Sunday; croniter counts them 0-6. `quartz_to_croniter`
translates, and refuses (with the reason) what has no translation.

`schedules_dispatch` runs every minute for every sandbox: each active schedule whose
`next_run_at` has passed is claimed with a compare-and-set on `next_run_at` (two beat
processes never start the same run twice), then starts its job.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from croniter import croniter
from django.db import transaction

from audiences.models import Schedule, SegmentDefinition, SegmentJob
from portal.errors import ErrorCode, SiftError
from portal.scope import sandbox_scope

log = logging.getLogger(__name__)

PATCHABLE = {"/state", "/schedule", "/name", "/properties"}


def quartz_to_croniter(expression: str) -> str:
    """A Quartz cron expression in croniter's six-field (seconds first) form."""
    if not isinstance(expression, str) or not expression.strip():
        raise _cron_error(expression, "it is empty")
    fields = expression.split()
    if len(fields) not in (6, 7):
        raise _cron_error(expression, f"it has {len(fields)} fields; Quartz needs 6 or 7 "
                                      "(seconds minutes hours day-of-month month day-of-week "
                                      "[year])")
    if len(fields) == 7:
        if fields[6] != "*":
            raise _cron_error(expression, "a year other than * is not supported")
        fields = fields[:6]
    if "W" in fields[3].upper():
        raise _cron_error(expression, "the W (nearest weekday) character is not supported")
    fields[5] = _quartz_weekdays(fields[5])
    translated = " ".join(fields)
    if not croniter.is_valid(translated, second_at_beginning=True):
        raise _cron_error(expression, "it is not a valid Quartz cron expression")
    return translated


def _quartz_weekdays(field: str) -> str:
    def shift(match: re.Match) -> str:
        number = int(match.group(0))
        if not 1 <= number <= 7:
            raise _cron_error(field, "days of the week run from 1 (Sunday) to 7 (Saturday)")
        return str(number - 1)

    head, sep, nth = field.partition("#")
    return re.sub(r"\d+", shift, head) + sep + nth


def _cron_error(expression, reason: str) -> SiftError:
    return SiftError(ErrorCode.INVALID, f"schedule {expression!r} is refused: {reason}.",
                     {"field": "schedule"})


def next_run(expression: str, after: datetime) -> datetime:
    return croniter(quartz_to_croniter(expression), after,
                    second_at_beginning=True).get_next(datetime)


def _check_properties(schedule_type: str, properties: Any) -> dict:
    if not isinstance(properties, Mapping):
        raise SiftError(ErrorCode.INVALID, "properties must be an object.",
                        {"field": "properties"})
    properties = dict(properties)
    segments = properties.get("segments", ["*"])
    if not isinstance(segments, list) or not segments or not all(
            isinstance(s, str) for s in segments):
        raise SiftError(ErrorCode.INVALID, "properties.segments must be a non-empty list of "
                        "segment ids, or [\"*\"].", {"field": "properties.segments"})
    if segments != ["*"]:
        found = {str(pk) for pk in SegmentDefinition.objects.filter(
            pk__in=[s for s in segments if _is_uuid(s)]).values_list("pk", flat=True)}
        unknown = [s for s in segments if s not in found]
        if unknown:
            raise SiftError(ErrorCode.NOT_FOUND, f"Unknown segment id(s) in properties.segments:"
                            f" {', '.join(unknown[:10])}.", {"field": "properties.segments"})
    properties["segments"] = segments
    if schedule_type == Schedule.Type.EXPORT:
        if segments == ["*"] or len(segments) != 1:
            raise SiftError(ErrorCode.INVALID, "An export schedule names exactly one segment in "
                            "properties.segments.", {"field": "properties.segments"})
        fmt = properties.get("format", "csv")
        if fmt not in ("csv", "jsonl"):
            raise SiftError(ErrorCode.INVALID, "properties.format must be csv or jsonl.",
                            {"field": "properties.format"})
        fields = properties.get("fields", [])
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise SiftError(ErrorCode.INVALID, "properties.fields must be a list of paths.",
                            {"field": "properties.fields"})
    return properties


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _check_choice(value, choices, field: str) -> str:
    if value not in choices:
        raise SiftError(ErrorCode.INVALID, f"{field} must be one of {', '.join(choices)}.",
                        {"field": field})
    return value


def schedule_create(*, name: str, schedule_type: str, schedule: str, state: str = "inactive",
                    properties: Mapping | None = None, now: datetime) -> Schedule:
    _check_choice(schedule_type, Schedule.Type.values, "type")
    _check_choice(state, Schedule.State.values, "state")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise SiftError(ErrorCode.INVALID, "name is required (at most 200 characters).",
                        {"field": "name"})
    properties = _check_properties(schedule_type, properties or {})
    quartz_to_croniter(schedule)
    return Schedule.objects.create(
        name=name.strip(), type=schedule_type, schedule=schedule, state=state,
        properties=properties, created_at=now, updated_at=now,
        next_run_at=next_run(schedule, now))


def schedule_get(*, schedule_id) -> Schedule:
    found = Schedule.objects.filter(pk=schedule_id).first() if _is_uuid(str(schedule_id)) \
        else None
    if found is None:
        raise SiftError(ErrorCode.NOT_FOUND, f"Schedule {schedule_id} was not found.")
    return found


def schedule_patch(*, schedule_id, operations: list, now: datetime) -> Schedule:
    """JSON Patch (`add`/`replace`) of /state, /schedule, /name or /properties."""
    schedule = schedule_get(schedule_id=schedule_id)
    if not isinstance(operations, list) or not operations:
        raise SiftError(ErrorCode.INVALID, "The body must be a non-empty JSON Patch array.")
    for index, op in enumerate(operations):
        if not isinstance(op, Mapping) or op.get("op") not in ("add", "replace") or \
                op.get("path") not in PATCHABLE or "value" not in op:
            raise SiftError(ErrorCode.INVALID,
                            f"Operation {index} must be {{op: add|replace, path: one of "
                            f"{', '.join(sorted(PATCHABLE))}, value}}.", {"index": index})
        field, value = op["path"][1:], op["value"]
        if field == "state":
            schedule.state = _check_choice(value, Schedule.State.values, "state")
        elif field == "schedule":
            quartz_to_croniter(value)
            schedule.schedule = value
            schedule.next_run_at = next_run(value, now)
        elif field == "name":
            if not isinstance(value, str) or not value.strip() or len(value) > 200:
                raise SiftError(ErrorCode.INVALID, "name must be 1-200 characters.",
                                {"field": "name"})
            schedule.name = value.strip()
        else:
            schedule.properties = _check_properties(schedule.type, value)
    schedule.updated_at = now
    schedule.save()
    return schedule


def schedule_delete(*, schedule_id) -> None:
    schedule_get(schedule_id=schedule_id).delete()


def schedules_dispatch(*, now: datetime) -> int:
    """Start every due active schedule in every sandbox; returns how many started."""
    started = 0
    # Schedules made without a next run (the bootstrap's) get one; they fire from then on.
    for schedule in Schedule.objects.unscoped().filter(next_run_at__isnull=True):
        try:
            upcoming = next_run(schedule.schedule, now)
        except SiftError:
            continue
        Schedule.objects.unscoped().filter(pk=schedule.pk, next_run_at__isnull=True).update(
            next_run_at=upcoming)
    due = Schedule.objects.unscoped().select_related("sandbox").filter(
        state=Schedule.State.ACTIVE, next_run_at__lte=now)
    for schedule in due:
        with sandbox_scope(schedule.sandbox):
            try:
                upcoming = next_run(schedule.schedule, now)
            except SiftError:
                continue  # an invalid stored cron cannot fire; the API refuses new ones
            claimed = Schedule.objects.filter(pk=schedule.pk, next_run_at=schedule.next_run_at
                                              ).update(next_run_at=upcoming, last_run_at=now)
            if claimed:
                _start(schedule, now)
                started += 1
    return started


def _start(schedule: Schedule, now: datetime) -> None:
    from audiences.services.batch import segment_job_create
    from audiences.services.exports import export_create

    segments = schedule.properties.get("segments", ["*"])
    try:
        with transaction.atomic():
            if schedule.type == Schedule.Type.EXPORT:
                export_create(segment_id=segments[0],
                              file_format=schedule.properties.get("format", "csv"),
                              fields=schedule.properties.get("fields", []), user=None, now=now)
            else:
                segment_job_create(segment_ids=segments, source=SegmentJob.Source.SCHEDULER,
                                   now=now, schedule=schedule,
                                   snapshot_name=f"{schedule.name} {now:%Y-%m-%dT%H:%M}Z")
    except SiftError as error:
        # A definition the schedule names was deleted since; the next run tries again.
        log.warning("schedule %s could not start: %s", schedule.pk, error.message)


