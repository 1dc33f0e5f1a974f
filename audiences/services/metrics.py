"""Roll the membership change log into per-audience hourly and daily buckets.

A bucket (definition, granularity, start) holds:
- `realized`: entries during the bucket (transitions from nothing/`exited` to `realized`),
- `exited`: exits during the bucket (transitions from `realized`/`existing` to `exited`),
- `realized_streaming` / `exited_streaming`: the part of those made by streaming or edge
  evaluation — Adobe's "New audience updated" line, which leaves out the batch job,
- `total`: profiles qualified at the end of the bucket (running sum of entries minus exits).

`realized` -> `existing` (a batch job confirming a member) is neither an entry nor an exit.

The roll-up is incremental: a cursor remembers the last change id folded in, so each run reads
only new rows. A change whose bucket is older than buckets already written (a replayed job)
also moves the totals of every later bucket, so totals stay exact whatever the arrival order.
Buckets exist only where something changed; charts carry the last total forward over gaps.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F

from audiences.models import (
    QUALIFIED,
    Cursor,
    MembershipChange,
    MetricBucket,
    SegmentDefinition,
    Source,
    Status,
)

CURSOR_NAME = "metrics.rollup"
STREAMING_SOURCES = (Source.STREAMING, Source.EDGE)
BATCH_SIZE = 5000


def bucket_start(at: datetime, granularity: str) -> datetime:
    if granularity == MetricBucket.Granularity.HOUR:
        return at.replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class _Delta:
    realized: int = 0
    exited: int = 0
    realized_streaming: int = 0
    exited_streaming: int = 0

    @property
    def net(self) -> int:
        return self.realized - self.exited


@dataclass
class RollupResult:
    changes: int = 0
    buckets: int = 0
    definitions: set = field(default_factory=set)


def _classify(change) -> tuple[int, int]:
    """(entries, exits) contributed by one transition."""
    was_in = change.old_status in QUALIFIED
    is_in = change.new_status in QUALIFIED
    if is_in and not was_in:
        return 1, 0
    if was_in and change.new_status == Status.EXITED:
        return 0, 1
    return 0, 0


def metrics_rollup(*, batch_size: int = BATCH_SIZE, max_batches: int | None = None
                   ) -> RollupResult:
    """Fold every change-log row after the cursor into buckets. Safe to run concurrently:
    the cursor row is locked for the duration of each batch."""
    result = RollupResult()
    batches = 0
    while max_batches is None or batches < max_batches:
        with transaction.atomic():
            cursor, _ = Cursor.objects.select_for_update().get_or_create(name=CURSOR_NAME)
            rows = list(MembershipChange.objects.unscoped()
                        .filter(id__gt=cursor.position).order_by("id")
                        .only("id", "sandbox_id", "definition_id", "old_status", "new_status",
                              "at", "source")[:batch_size])
            if not rows:
                break
            deltas: dict[tuple, _Delta] = defaultdict(_Delta)
            for change in rows:
                entries, exits = _classify(change)
                if not entries and not exits:
                    continue
                streaming = change.source in STREAMING_SOURCES
                for granularity in MetricBucket.Granularity.values:
                    key = (change.sandbox_id, change.definition_id, granularity,
                           bucket_start(change.at, granularity))
                    delta = deltas[key]
                    delta.realized += entries
                    delta.exited += exits
                    if streaming:
                        delta.realized_streaming += entries
                        delta.exited_streaming += exits
            _write(deltas)
            cursor.position = rows[-1].id
            cursor.save(update_fields=["position", "updated_at"])
            result.changes += len(rows)
            result.buckets += len(deltas)
            result.definitions.update(key[1] for key in deltas)
        batches += 1
    return result


def _write(deltas: dict[tuple, _Delta]) -> None:
    # Oldest first, so "every later bucket" already exists when an older delta is applied.
    for (sandbox_id, definition_id, granularity, start), delta in sorted(
            deltas.items(), key=lambda item: item[0][3]):
        buckets = MetricBucket.objects.unscoped().filter(definition_id=definition_id,
                                                         granularity=granularity)
        bucket = buckets.filter(start=start).first()
        if bucket is None:
            previous = buckets.filter(start__lt=start).order_by("-start").first()
            bucket = MetricBucket.objects.unscoped().create(
                sandbox_id=sandbox_id, definition_id=definition_id, granularity=granularity,
                start=start, total=previous.total if previous else 0)
        MetricBucket.objects.unscoped().filter(pk=bucket.pk).update(
            realized=F("realized") + delta.realized, exited=F("exited") + delta.exited,
            realized_streaming=F("realized_streaming") + delta.realized_streaming,
            exited_streaming=F("exited_streaming") + delta.exited_streaming,
            total=F("total") + delta.net)
        if delta.net:
            buckets.filter(start__gt=start).update(total=F("total") + delta.net)


@dataclass(frozen=True)
class Series:
    """Points of one chart: bucket starts, totals and streaming entries/exits per bucket."""

    starts: list[datetime]
    total: list[int]
    realized: list[int]
    exited: list[int]
    realized_streaming: list[int]
    exited_streaming: list[int]


def metrics_series(*, definition: SegmentDefinition, granularity: str, start: datetime,
                   end: datetime) -> Series:
    """A gap-free series from `start` to `end` (exclusive), carrying totals over empty buckets."""
    step = timedelta(hours=1) if granularity == MetricBucket.Granularity.HOUR else timedelta(
        days=1)
    first = bucket_start(start, granularity)
    buckets = {b.start: b for b in MetricBucket.objects.filter(
        definition=definition, granularity=granularity, start__gte=first, start__lt=end)}
    before = (MetricBucket.objects.filter(definition=definition, granularity=granularity,
                                          start__lt=first).order_by("-start").first())
    running = before.total if before else 0
    series = Series([], [], [], [], [], [])
    cursor = first
    while cursor < end:
        bucket = buckets.get(cursor)
        if bucket is not None:
            running = bucket.total
        series.starts.append(cursor)
        series.total.append(running)
        series.realized.append(bucket.realized if bucket else 0)
        series.exited.append(bucket.exited if bucket else 0)
        series.realized_streaming.append(bucket.realized_streaming if bucket else 0)
        series.exited_streaming.append(bucket.exited_streaming if bucket else 0)
        cursor += step
    return series
