"""Bulk import of a JSONL or CSV file into a dataset, through `ingest_records`.

File formats:
- JSONL: one XDM record (a JSON object) per line; blank lines are skipped.
- CSV: one record per row; each header is a dotted XDM path (`homeAddress.city`). A header
  `identityMap.<Namespace>` holds that namespace's id; the first such column is the primary
  identity. A `:int`, `:number` or `:bool` suffix types a column (`loyalty.points:int`); other
  cells stay strings (zip codes keep their leading zeros). Empty cells are left out, as XDM
  accepts no empty values.

A line or row that cannot be read is rejected with its index and reason like any invalid
record; indexes are 0-based record positions in the file (blank JSONL lines excluded).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from audiences.models import Dataset
from audiences.services.ingest import ingest_records
from portal.errors import ErrorCode, SiftError

DEFAULT_BATCH = 1000
_TYPES: dict[str, Callable[[str], Any]] = {
    "int": int, "number": float,
    "bool": lambda v: {"true": True, "false": False}[v.strip().lower()],
}


@dataclass
class ImportResult:
    records: int = 0
    accepted: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)


def _csv_record(row: dict[str, str]) -> dict:
    record: dict = {}
    identity_map: dict[str, list[dict]] = {}
    for header, cell in row.items():
        if header is None or cell is None or cell == "":
            continue
        path, _, kind = header.strip().partition(":")
        if kind and kind not in _TYPES:
            raise ValueError(f"column {header!r}: type must be one of {', '.join(_TYPES)}")
        try:
            value = _TYPES[kind](cell) if kind else cell
        except (ValueError, KeyError):
            raise ValueError(f"column {header!r}: {cell[:40]!r} is not a {kind}") from None
        if path.startswith("identityMap."):
            namespace = path.removeprefix("identityMap.").removesuffix(".id")
            entry = {"id": str(value)}
            if not identity_map:
                entry["primary"] = True
            identity_map.setdefault(namespace, []).append(entry)
            continue
        target = record
        parts = path.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ValueError(f"column {header!r} conflicts with another column")
        target[parts[-1]] = value
    if identity_map:
        record["identityMap"] = identity_map
    return record


def read_records(path: Path) -> Iterator[dict | ValueError]:
    """Each record of the file in order, or the `ValueError` that made it unreadable."""
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".ndjson", ".csv"):
        raise SiftError(ErrorCode.INVALID, f"{path.name}: use a .jsonl or .csv file.")
    with path.open(encoding="utf-8", newline="") as handle:
        if suffix == ".csv":
            for row in csv.DictReader(handle):
                try:
                    yield _csv_record(row)
                except ValueError as error:
                    yield error
            return
        for line in handle:
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError:
                yield ValueError("the line is not valid JSON")


def import_file(*, dataset: Dataset, path: Path, now: datetime, batch_size: int = DEFAULT_BATCH,
                progress: Callable[[int], None] | None = None) -> ImportResult:
    """Ingest the file batch by batch (each batch one transaction, as a streaming request)."""
    result = ImportResult()
    batch: list[tuple[int, dict]] = []

    def flush() -> None:
        outcome = ingest_records(dataset=dataset, records=[r for _, r in batch], now=now,
                                 source="import")
        result.accepted += outcome.accepted
        result.rejected.extend((batch[i][0], reason) for i, reason in outcome.rejected)
        if progress:
            progress(len(batch))
        batch.clear()

    for index, item in enumerate(read_records(path)):
        result.records += 1
        if isinstance(item, ValueError):
            result.rejected.append((index, str(item)))
            if progress:
                progress(1)
            continue
        batch.append((index, item))
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    result.rejected.sort()
    return result
