"""Exports: an audience's members as CSV or JSON Lines (identities + chosen attributes).

The file is written by streaming: memberships are read in primary-key order in bounded chunks
(`values_list` + keyset paging, no model instances, no result cache) and each row is written
as it is read, so memory stays flat whatever the audience size. The finished file is served
by the API (`.../export/jobs/{id}/file`) as a streamed response.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from audiences.models import QUALIFIED, ExportJob, Membership, SegmentDefinition, Status
from portal.errors import ErrorCode, SiftError

log = logging.getLogger(__name__)

CHUNK = 2000
FORMATS = ("csv", "jsonl")


def _is_uuid(value) -> bool:
    import uuid

    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def export_create(*, segment_id: str, file_format: str = "csv", fields: list[str] | None = None,
                  statuses: list[str] | None = None, request: dict | None = None,
                  user: User | None, now: datetime, enqueue: bool = True) -> ExportJob:
    """Queue an export of one audience's members (realized + existing unless told)."""
    definition = SegmentDefinition.objects.filter(pk=segment_id).first() \
        if _is_uuid(segment_id) else None
    if definition is None:
        raise SiftError(ErrorCode.NOT_FOUND, f"Segment {segment_id} was not found.",
                        {"field": "filter.segments.segmentId"})
    if file_format not in FORMATS:
        raise SiftError(ErrorCode.INVALID, "format must be csv or jsonl.", {"field": "format"})
    fields = list(fields or [])
    if not all(isinstance(f, str) and f and len(f) < 500 and "\x00" not in f for f in fields):
        raise SiftError(ErrorCode.INVALID, "fields must be dot paths.", {"field": "fields"})
    statuses = list(statuses or QUALIFIED)
    if not statuses or not set(statuses) <= set(Status.values):
        raise SiftError(ErrorCode.INVALID, "status must be realized, existing and/or exited.",
                        {"field": "filter.segments.status"})
    with transaction.atomic():
        export = ExportJob.objects.create(
            definition=definition, file_format=file_format, fields=fields, statuses=statuses,
            request=request or {}, created_by=user, created_at=now, updated_at=now)
        if enqueue:
            export_id = export.pk
            transaction.on_commit(lambda: _enqueue(export_id))
    return export


def _enqueue(export_id: int) -> None:
    from audiences.tasks import export_run as task

    task.delay(export_id)


def export_get(*, export_id) -> ExportJob:
    found = ExportJob.objects.filter(pk=export_id).first() if str(export_id).isdigit() and len(
        str(export_id)) < 19 else None
    if found is None:
        raise SiftError(ErrorCode.NOT_FOUND, f"Export job {export_id} was not found.")
    return found


def export_path(export: ExportJob) -> Path:
    return (Path(settings.SIFT_EXPORT_DIR) / str(export.sandbox_id)
            / f"export-{export.pk}.{export.file_format}")


def _value(document: dict, path: str):
    value = document
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def member_rows(export: ExportJob) -> Iterator[tuple]:
    """(primary namespace, primary id, identityMap, attributes, status, lqt) in pk order,
    read in bounded chunks by keyset paging."""
    last = 0
    base = Membership.objects.filter(definition_id=export.definition_id,
                                     status__in=export.statuses)
    while True:
        chunk = list(base.filter(pk__gt=last).order_by("pk").values_list(
            "pk", "profile__primary_namespace", "profile__primary_id", "profile__identity_map",
            "profile__attributes", "status", "last_qualification_time")[:CHUNK])
        if not chunk:
            return
        for row in chunk:
            yield row[1:]
        last = chunk[-1][0]


def export_run(*, export_id, now: datetime) -> ExportJob:
    """Write the export file; the job records counts, timing and any error."""
    claimed = ExportJob.objects.filter(pk=export_id, status=ExportJob.Status.NEW).update(
        status=ExportJob.Status.PROCESSING, updated_at=now)
    export = export_get(export_id=export_id)
    if not claimed:
        return export
    path = export_path(export)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        with open(path, "w", newline="", encoding="utf-8") as out:
            writer = _writer(export, out)
            for row in member_rows(export):
                writer(row)
                written += 1
    except OSError as error:
        log.exception("export %s failed", export_id)
        ExportJob.objects.filter(pk=export.pk).update(
            status=ExportJob.Status.FAILED, updated_at=now,
            errors=[{"code": "write_failed", "msg": str(error)}])
        return export_get(export_id=export_id)
    ExportJob.objects.filter(pk=export.pk).update(
        status=ExportJob.Status.SUCCEEDED, file_path=str(path), updated_at=now,
        metrics={"totalExportedProfileCounter": written, "bytes": path.stat().st_size})
    return export_get(export_id=export_id)


def _writer(export: ExportJob, out):
    fields = export.fields
    if export.file_format == "csv":
        sheet = csv.writer(out)
        sheet.writerow(["namespace", "id", "status", "lastQualificationTime", *fields])

        def write_csv(row) -> None:
            ns, pid, _, attributes, status, lqt = row
            sheet.writerow([ns, pid, status, _iso(lqt),
                            *[_cell(_value(attributes or {}, f)) for f in fields]])

        return write_csv

    def write_jsonl(row) -> None:
        ns, pid, identity_map, attributes, status, lqt = row
        record = {"identityMap": identity_map, "primaryIdentity": {"namespace": ns, "id": pid},
                  "status": status, "lastQualificationTime": _iso(lqt),
                  "attributes": {f: _value(attributes or {}, f) for f in fields}}
        out.write(json.dumps(record, separators=(",", ":")) + "\n")

    return write_jsonl


def _iso(value) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value or "")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
