"""Custom-upload audiences: a CSV of identities becomes an audience of origin "Custom upload".

1. `csv_preview` reads the header and the first rows so the marketer can pick the identity
   column (nothing is stored).
2. `audience_import_csv` creates the external definition (no PQL, nothing to evaluate), finds the
   profiles of the sandbox's default merge policy that own the uploaded identities, and writes
   their memberships through `membership_apply` (source `upload`) in the same transaction, so a
   failed import leaves nothing behind.
3. `uploads_expire_all` (beat) exits the members of uploads whose data expiration has passed,
   through `membership_apply` again, so the change log and the counters say when they left.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction

from audiences.models import (
    QUALIFIED,
    Identity,
    Membership,
    MergePolicy,
    Profile,
    SegmentDefinition,
    Source,
)
from audiences.services.definitions import definition_create
from audiences.services.memberships import membership_apply
from portal.errors import ErrorCode, SiftError
from portal.models import Sandbox
from portal.scope import sandbox_scope

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
PREVIEW_ROWS = 8
LOOKUP_CHUNK = 1000


@dataclass(frozen=True)
class CsvPreview:
    columns: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class ImportResult:
    definition: SegmentDefinition
    identities: int  # distinct non-empty identity values in the file
    matched: int  # of which belong to a profile of the default merge policy


def _decode(data: bytes) -> str:
    if len(data) > MAX_UPLOAD_BYTES:
        raise SiftError(ErrorCode.INVALID, "The CSV file is larger than 20 MB.", {"field": "file"})
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SiftError(ErrorCode.INVALID, "The CSV file is not UTF-8 text.",
                        {"field": "file"}) from None


def _reader(data: bytes) -> tuple[list[str], csv.reader]:
    reader = csv.reader(io.StringIO(_decode(data)))
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise SiftError(ErrorCode.INVALID, "The CSV file is empty; the first line must name the "
                        "columns.", {"field": "file"})
    return [h.strip() for h in header], reader


def csv_preview(*, data: bytes) -> CsvPreview:
    """The header and the first rows of an uploaded CSV."""
    columns, reader = _reader(data)
    rows = []
    for row in reader:
        rows.append(row)
        if len(rows) >= PREVIEW_ROWS:
            break
    return CsvPreview(columns=columns, rows=rows)


def csv_identities(*, data: bytes, column: str) -> list[str]:
    """The distinct non-empty values of `column`, in file order."""
    columns, reader = _reader(data)
    if column not in columns:
        raise SiftError(ErrorCode.INVALID, f"The CSV has no column {column!r}; it has "
                        f"{', '.join(columns)}.", {"field": "identity_column"})
    index = columns.index(column)
    seen: dict[str, None] = {}
    for line, row in enumerate(reader, start=2):
        if index >= len(row):
            raise SiftError(ErrorCode.INVALID, f"Line {line} of the CSV has no {column!r} value.",
                            {"field": "file", "line": line})
        value = row[index].strip()
        if value:
            seen.setdefault(value)
    return list(seen)


def _profile_ids(*, policy: MergePolicy, namespace: str, values: list[str]) -> list[int]:
    """Profiles of `policy` owning any of the identities (stitched graphs count once)."""
    entity_ids: set[int] = set()
    for start in range(0, len(values), LOOKUP_CHUNK):
        chunk = values[start:start + LOOKUP_CHUNK]
        for pk, cluster in Identity.objects.filter(namespace=namespace, value__in=chunk
                                                   ).values_list("pk", "cluster_id"):
            entity_ids.add(cluster if policy.stitches and cluster else pk)
    ids: list[int] = []
    listed = sorted(entity_ids)
    for start in range(0, len(listed), LOOKUP_CHUNK):
        ids += Profile.objects.filter(merge_policy=policy, excluded=False,
                                      entity_id__in=listed[start:start + LOOKUP_CHUNK]
                                      ).values_list("pk", flat=True)
    return ids


def audience_import_csv(*, name: str, data: bytes, identity_column: str, namespace: str,
                        description: str = "", expiration_days: int | None = None,
                        user: User | None, now: datetime) -> ImportResult:
    """Create a custom-upload audience from a CSV of identities (see module docstring)."""
    if not namespace:
        raise SiftError(ErrorCode.INVALID, "Choose the identity namespace of the column.",
                        {"field": "namespace"})
    if expiration_days is not None and not 1 <= expiration_days <= 3650:
        raise SiftError(ErrorCode.INVALID, "Data expiration must be between 1 and 3650 days.",
                        {"field": "expiration_days"})
    values = csv_identities(data=data, column=identity_column)
    if not values:
        raise SiftError(ErrorCode.INVALID, f"The column {identity_column!r} has no identities.",
                        {"field": "identity_column"})
    with transaction.atomic():
        definition = definition_create(
            name=name, expression="", description=description,
            origin=SegmentDefinition.Origin.CUSTOM_UPLOAD, namespace="CustomerAudienceUpload",
            external_meta={"identityColumn": identity_column, "identityNamespace": namespace,
                           "rows": len(values)},
            user=user, now=now)
        if expiration_days:
            definition.expires_at = now + timedelta(days=expiration_days)
            definition.save(update_fields=["expires_at"])
        profile_ids = _profile_ids(policy=definition.merge_policy, namespace=namespace,
                                   values=values)
        membership_apply(definition=definition, results=dict.fromkeys(profile_ids, True),
                         at=now, source=Source.UPLOAD)
        definition.refresh_from_db()
    return ImportResult(definition=definition, identities=len(values), matched=len(profile_ids))


def _expired(queryset, now: datetime):
    return queryset.filter(origin=SegmentDefinition.Origin.CUSTOM_UPLOAD, expires_at__lte=now,
                           qualified_count__gt=0)


def uploads_expire(*, now: datetime) -> int:
    """Exit every member of the current sandbox's expired uploads; returns how many left."""
    left = 0
    for definition in _expired(SegmentDefinition.objects.all(), now):
        members = Membership.objects.filter(definition=definition, status__in=QUALIFIED)
        results = dict.fromkeys(members.values_list("profile_id", flat=True), False)
        left += len(membership_apply(definition=definition, results=results, at=now,
                                     source=Source.SYSTEM))
    return left


def uploads_expire_all(*, now: datetime) -> int:
    """`uploads_expire` in every sandbox that has an expired upload (the beat entry point)."""
    sandbox_ids = set(_expired(SegmentDefinition.objects.unscoped(), now)
                      .values_list("sandbox_id", flat=True))
    left = 0
    for sandbox in Sandbox.objects.filter(pk__in=sandbox_ids):
        with sandbox_scope(sandbox):
            left += uploads_expire(now=now)
    return left
