"""Ingestion: the one write path for profile records and experience events.

Every way data gets in (streaming endpoints, `import_data`, edge, demo, simulate) calls
`ingest_records`. For one request:

1. Each record is validated on its own (`record_parse`); a bad one is rejected with its index and
   a reason, the good ones are kept.
2. In ONE transaction, set-wise (a fixed number of queries per batch, not per record):
   identities are resolved or created, identities seen together are linked and their graphs
   merged (union-find, representative = smallest id; fragments, events and identities of an
   absorbed graph move to the representative), profile fragments are upserted (deep merge),
   events are stored once per `_id`, the merged profiles of every merge policy are refreshed,
   the schema catalogue is updated and an `IngestionBatch` row is written.
3. After commit, the change is announced (`services.profiles.changed`).

Dataset tags as AEP has them: a dataset whose tags say `unifiedIdentity: ["enabled:false"]`
contributes no identity links; one whose tags say `unifiedProfile: ["enabled:false"]` refuses
data (Sift has no data lake to keep it in). A tag that is absent means enabled.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import OperationalError, connection, transaction
from django.db.models import BooleanField, ExpressionWrapper, Q

from audiences.models import (
    EVENT_CLASS,
    Dataset,
    Event,
    Identity,
    IdentityLink,
    IdentityNamespace,
    IngestionBatch,
    MergePolicy,
    Profile,
    ProfileFragment,
    SchemaField,
    StreamingConnection,
)
from audiences.services.profiles import (
    LOOKUP_CHUNK,
    STANDARD_NAMESPACES,
    ProfileChange,
    changed,
    deep_merge,
    namespace_code,
    profiles_refresh,
)
from audiences.services.sql import any_of, column_remap, rows_insert, rows_update
from portal.errors import ErrorCode, SiftError
from portal.scope import current_sandbox

MAX_IDENTITIES_PER_RECORD = 20  # identity guardrails
MAX_IDENTITY_LENGTH = 1024
MAX_EVENT_BYTES = 10 * 1024  # profile guardrails: larger events are dropped
MAX_RECORD_BYTES = 100 * 1024  # larger profile records are dropped
MAX_STORED_ERRORS = 100
# `last_seen` of identities and links is refreshed only when older than this: a write per
# identity per event would double the cost of ingesting events for a value read in days.
LAST_SEEN_PRECISION = timedelta(hours=1)
RETRIES_ON_CONFLICT = 2
GRAPH_LOCK_CLASS = 4_004  # first key of the advisory locks that serialise merges of a graph
SCHEMA_EXAMPLES = 5
# Fields that describe the record rather than the person: not merged into profile attributes.
RECORD_ONLY_FIELDS = ("identityMap", "_id")


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    rejected: list[tuple[int, str]]
    change: ProfileChange | None
    batch_id: Any = None


class RecordInvalid(ValueError):
    """One record fails validation; the message is the reason reported with its index."""


@dataclass
class ParsedRecord:
    index: int
    identities: list[tuple[str, str]]  # (namespace, value), primary first, no duplicates
    record: dict
    updated_at: datetime | None = None  # profiles: extSourceSystemAudit.lastUpdatedDate
    event_id: str = ""
    timestamp: datetime | None = None
    event_type: str = ""


def parse_timestamp(value: Any, where: str) -> datetime:
    """An RFC 3339 / ISO-8601 string; naive times are read as UTC."""
    if not isinstance(value, str) or not value:
        raise RecordInvalid(f"{where} must be an ISO-8601 date-time string.")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RecordInvalid(f"{where} is not an ISO-8601 date-time: {value[:40]!r}.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _identities(record: dict) -> list[tuple[str, str]]:
    identity_map = record.get("identityMap")
    if not isinstance(identity_map, dict) or not identity_map:
        raise RecordInvalid("identityMap is missing: a record needs at least one identity.")
    primary: list[tuple[str, str]] = []
    others: list[tuple[str, str]] = []
    for namespace, entries in identity_map.items():
        if not namespace or not isinstance(entries, list):
            raise RecordInvalid(f"identityMap.{namespace} must be an array of identities.")
        for position, entry in enumerate(entries):
            where = f"identityMap.{namespace}[{position}]"
            value = entry.get("id") if isinstance(entry, dict) else None
            if not isinstance(value, str) or not value.strip():
                raise RecordInvalid(f"{where}.id must be a non-empty string.")
            if len(value) > MAX_IDENTITY_LENGTH or len(namespace) > 100:
                raise RecordInvalid(f"{where}.id is longer than {MAX_IDENTITY_LENGTH} "
                                    "characters.")
            pair = (namespace_code(namespace), value)
            (primary if entry.get("primary") is True else others).append(pair)
    if len(primary) > 1:
        raise RecordInvalid("identityMap marks more than one identity as primary.")
    if not primary and not others:
        raise RecordInvalid("identityMap holds no identity: at least one is required.")
    ordered = list(dict.fromkeys(primary + others))
    if len(ordered) > MAX_IDENTITIES_PER_RECORD:
        raise RecordInvalid(f"identityMap holds {len(ordered)} identities; at most "
                            f"{MAX_IDENTITIES_PER_RECORD} are allowed per record.")
    return ordered


def record_parse(record: Any, *, index: int, is_event: bool) -> ParsedRecord:
    """Validate one XDM record (event or profile); raises `RecordInvalid` with the reason."""
    if not isinstance(record, dict):
        raise RecordInvalid("A record must be a JSON object.")
    try:
        text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
        size = len(text.encode())
    except (TypeError, ValueError):  # UnicodeEncodeError: a lone surrogate
        raise RecordInvalid("The record is not valid UTF-8 JSON.") from None
    if "\\u0000" in text:  # PostgreSQL's jsonb refuses NUL characters
        raise RecordInvalid("The record contains a NUL character.")
    limit = MAX_EVENT_BYTES if is_event else MAX_RECORD_BYTES
    if size > limit:
        raise RecordInvalid(f"The record is {size} bytes; the limit for this class is "
                            f"{limit} bytes.")
    parsed = ParsedRecord(index=index, identities=_identities(record), record=record)
    if is_event:
        event_id = record.get("_id")
        if not isinstance(event_id, str) or not event_id.strip():
            raise RecordInvalid("_id is required on an experience event (a non-empty string).")
        if len(event_id) > 256:
            raise RecordInvalid("_id is longer than 256 characters.")
        parsed.event_id = event_id
        parsed.timestamp = parse_timestamp(record.get("timestamp"), "timestamp")
        event_type = record.get("eventType", "")
        if not isinstance(event_type, str) or len(event_type) > 200:
            raise RecordInvalid("eventType must be a string of at most 200 characters.")
        parsed.event_type = event_type
    else:
        audit = record.get("extSourceSystemAudit")
        if isinstance(audit, dict) and "lastUpdatedDate" in audit:
            parsed.updated_at = parse_timestamp(audit["lastUpdatedDate"],
                                                "extSourceSystemAudit.lastUpdatedDate")
    return parsed


def _tag_enabled(dataset: Dataset, tag: str) -> bool:
    values = (dataset.tags or {}).get(tag)
    return values is None or "enabled:false" not in values


def accepts_data(dataset: Dataset) -> bool:
    """Whether `ingest_records` takes records for `dataset` (its Profile tag is not off)."""
    return _tag_enabled(dataset, "unifiedProfile")


def _chunks(values: list, size: int = LOOKUP_CHUNK) -> Iterable[list]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


# --- The entry point --------------------------------------------------------------------------


def ingest_records(*, dataset: Dataset, records: list[dict], now: datetime, source: str,
                   connection: StreamingConnection | None = None) -> IngestResult:
    """Validate, store and link `records` into `dataset`; announce the change after commit."""
    if not accepts_data(dataset):
        raise SiftError(ErrorCode.INVALID,
                        f"Dataset {dataset.pk} is not enabled for Profile "
                        "(tags.unifiedProfile); enable it before sending data.",
                        {"datasetId": dataset.pk})
    is_event = dataset.class_name == EVENT_CLASS
    parsed: list[ParsedRecord] = []
    rejected: list[tuple[int, str]] = []
    for index, record in enumerate(records):
        try:
            parsed.append(record_parse(record, index=index, is_event=is_event))
        except RecordInvalid as error:
            rejected.append((index, str(error)))
    # Concurrent requests touching the same identities, profiles or catalogue rows may deadlock
    # on PostgreSQL; the loser's transaction is rolled back whole, so it is simply run again
    # (unless a caller's own transaction surrounds this one and is now aborted).
    attempts = RETRIES_ON_CONFLICT + 1 if _can_retry() else 1
    for attempt in range(1, attempts + 1):
        try:
            change, batch = _store(dataset=dataset, parsed=parsed, rejected=rejected,
                                   received=len(records), now=now, source=source,
                                   connection=connection)
            break
        except OperationalError as error:
            if attempt == attempts or not _is_conflict(error):
                raise
    return IngestResult(accepted=len(parsed), rejected=rejected, change=change,
                        batch_id=batch.pk)


def _can_retry() -> bool:
    """Only our own transaction can be run again; a caller's aborted one cannot."""
    return not transaction.get_connection().in_atomic_block


def _is_conflict(error: OperationalError) -> bool:
    """A PostgreSQL deadlock (40P01) or serialization failure (40001): safe to retry."""
    return getattr(error.__cause__, "sqlstate", None) in ("40P01", "40001")


def _store(*, dataset: Dataset, parsed: list[ParsedRecord], rejected: list[tuple[int, str]],
           received: int, now: datetime, source: str, connection: StreamingConnection | None
           ) -> tuple[ProfileChange | None, IngestionBatch]:
    """The one transaction of an ingest request (module docstring, step 2)."""
    with transaction.atomic():
        store = _Store(dataset=dataset, now=now, link=_tag_enabled(dataset, "unifiedIdentity"))
        change = store.run(parsed, source=source) if parsed else None
        batch = IngestionBatch.objects.create(
            dataset=dataset, connection=connection, source=source, received=received,
            accepted=len(parsed), rejected=len(rejected),
            errors=[{"index": i, "reason": r} for i, r in rejected[:MAX_STORED_ERRORS]])
        if change is not None:
            changed(change)
    return change, batch


# --- Storage, set-wise -----------------------------------------------------------------------


@dataclass
class _Graph:
    """Union-find over graph ids (representative = smallest id)."""

    parent: dict[int, int] = field(default_factory=dict)

    def find(self, node: int) -> int:
        root = node
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while node != root:  # path compression
            self.parent[node], node = root, self.parent.get(node, node)
        return root

    def union(self, a: int, b: int) -> bool:
        """Join the graphs of `a` and `b`; True when they were two graphs."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        low, high = min(ra, rb), max(ra, rb)
        self.parent[high] = low
        return True


class _Store:
    def __init__(self, *, dataset: Dataset, now: datetime, link: bool) -> None:
        self.dataset = dataset
        self.now = now
        self.link = link
        self.is_event = dataset.class_name == EVENT_CLASS
        self.identity_pk: dict[tuple[str, str], int] = {}
        self.cluster_of: dict[int, int] = {}  # identity pk -> graph id (after linking)
        self.new_identities: set[int] = set()
        self.changed_clusters: set[int] = set()  # graphs that gained identities or merged
        self.absorbed: dict[int, int] = {}  # old graph id -> representative
        self.sandbox_id = current_sandbox().pk
        self.stale_identities: list[int] = []

    def run(self, parsed: list[ParsedRecord], *, source: str) -> ProfileChange:
        policies = list(MergePolicy.objects.all())
        self._namespaces(parsed)
        self._resolve_identities(parsed)
        if self.link:
            self._link(parsed)
        self._set_new_clusters()
        if self.is_event:
            touched = self._events(parsed)
            refresh_clusters, refresh_ids = set(), set()
        else:
            touched = parsed
            refresh_ids = self._fragments(parsed)
            refresh_clusters = {self.cluster_of[i] for i in refresh_ids}
        refresh_clusters |= {self.absorbed.get(c, c) for c in self.changed_clusters}
        primaries = {self.identity_pk[p.identities[0]] for p in touched}
        # Graphs and identities whose attributes did not change only need their profile ids,
        # unless some policy has no profile for them yet.
        graph_profiles, graphs_missing = self._profiles_of(
            {self.cluster_of[i] for i in primaries} - refresh_clusters, policies, stitches=True)
        identity_profiles, identities_missing = self._profiles_of(
            primaries - refresh_ids, policies, stitches=False)
        result = profiles_refresh(policies=policies, clusters=refresh_clusters | graphs_missing,
                                  identities=refresh_ids | identities_missing, now=self.now,
                                  absorbed_clusters=self.absorbed.keys())
        profile_ids = result.profile_ids | graph_profiles | identity_profiles
        self._catalogue(parsed)
        event_types = tuple(dict.fromkeys(p.event_type for p in touched if p.event_type))
        return ProfileChange(
            sandbox_id=self.sandbox_id, profile_ids=tuple(sorted(profile_ids)),
            attribute_paths=tuple(sorted(result.attribute_paths)), event_types=event_types,
            event_ids=tuple(p.event_id for p in touched if p.event_id), now=self.now,
            source=source, removed_profile_ids=tuple(sorted(result.removed_profile_ids)))

    # 1. namespaces and identities

    def _namespaces(self, parsed: list[ParsedRecord]) -> None:
        codes = {ns for p in parsed for ns, _ in p.identities}
        known = set(IdentityNamespace.objects.filter(code__in=list(codes))
                    .values_list("code", flat=True))
        IdentityNamespace.objects.bulk_create([
            IdentityNamespace(code=code, name=code, custom=code not in STANDARD_NAMESPACES,
                              id_type=STANDARD_NAMESPACES.get(code, "CROSS_DEVICE"))
            for code in sorted(codes - known)], ignore_conflicts=True)

    def _lookup_identities(self, keys: set[tuple[str, str]]) -> None:
        # Per namespace, so the (sandbox, namespace, value) unique index serves the look-up.
        by_namespace: dict[str, list[str]] = defaultdict(list)
        for namespace, value in sorted(keys):
            by_namespace[namespace].append(value)
        for namespace, values in by_namespace.items():
            for chunk in _chunks(values):
                # Staleness is decided in the query: no timestamp to read back per identity.
                rows = Identity.objects.filter(any_of("value", chunk),
                                               namespace=namespace).annotate(
                    stale=ExpressionWrapper(Q(last_seen__lt=self.now - LAST_SEEN_PRECISION),
                                            output_field=BooleanField())).values_list(
                    "pk", "value", "cluster_id", "stale")
                for pk, value, cluster_id, stale in rows:
                    self.identity_pk[(namespace, value)] = pk
                    self.cluster_of[pk] = cluster_id or pk
                    if stale:
                        self.stale_identities.append(pk)

    def _resolve_identities(self, parsed: list[ParsedRecord]) -> None:
        keys = {pair for p in parsed for pair in p.identities}
        self._lookup_identities(keys)
        for chunk in _chunks(self.stale_identities):
            Identity.objects.filter(any_of("pk", chunk)).update(last_seen=self.now)
        missing = sorted(keys - self.identity_pk.keys())
        if missing:
            inserted = rows_insert(
                Identity, ["sandbox", "namespace", "value", "first_seen", "last_seen"],
                [(self.sandbox_id, ns, value, self.now, self.now) for ns, value in missing],
                returning=["id", "namespace", "value"])
            for pk, namespace, value in inserted:
                self.identity_pk[(namespace, value)] = pk
                self.cluster_of[pk] = pk
                self.new_identities.add(pk)
            if len(inserted) < len(missing):
                # A concurrent request created some of them meanwhile (ON CONFLICT DO NOTHING).
                self._lookup_identities(set(missing) - self.identity_pk.keys())

    # 2. the graph

    def _union(self, parsed: list[ParsedRecord]) -> tuple[_Graph, set[tuple[int, int]], bool]:
        """The graph after this batch's links, its edges, and whether any two graphs met."""
        graph = _Graph()
        pairs: set[tuple[int, int]] = set()
        joined = False
        for p in parsed:
            if len(p.identities) < 2:
                continue  # one identity alone creates no link (Identity Service rule)
            ids = [self.identity_pk[pair] for pair in p.identities]
            for other in ids[1:]:
                pairs.add((min(ids[0], other), max(ids[0], other)))
                joined |= graph.union(self.cluster_of[ids[0]], self.cluster_of[other])
        return graph, pairs, joined

    def _lock_graphs(self, parsed: list[ParsedRecord]) -> None:
        """Serialise merges of the same graphs on PostgreSQL, then re-read the graph ids: two
        requests merging the same graphs concurrently would otherwise each remap from a stale
        view. One advisory lock per graph this batch joins, taken in id order, so requests
        joining other graphs go on in parallel; a graph that a concurrent merge moved ours
        into is locked in turn (until nothing new appears). Only batches that join graphs
        take locks (known links take none). SQLite already allows one writer at a time."""
        if connection.vendor != "postgresql":
            return
        locked: set[int] = set()
        while True:
            wanted = self._joining_graphs(parsed) - locked
            if not wanted:
                return
            keys = sorted({graph_id % 2_147_483_647 for graph_id in wanted})  # int4 keys
            with connection.cursor() as cursor:  # one statement; unnest keeps the order
                cursor.execute("SELECT count(pg_advisory_xact_lock(%s, k)) "
                               "FROM unnest(%s::integer[]) AS k", [GRAPH_LOCK_CLASS, keys])
            locked |= wanted
            for chunk in _chunks(sorted(self.cluster_of)):
                for pk, cluster_id in Identity.objects.filter(any_of("pk", chunk)).values_list(
                        "pk", "cluster_id"):
                    self.cluster_of[pk] = cluster_id or pk

    def _joining_graphs(self, parsed: list[ParsedRecord]) -> set[int]:
        """The graph ids that records of this batch link to another graph."""
        out: set[int] = set()
        for p in parsed:
            graphs = {self.cluster_of[self.identity_pk[pair]] for pair in p.identities}
            if len(graphs) > 1:
                out |= graphs
        return out

    def _link(self, parsed: list[ParsedRecord]) -> None:
        graph, pairs, joined = self._union(parsed)
        if joined:
            self._lock_graphs(parsed)
            graph, pairs, joined = self._union(parsed)
        self._store_links(pairs)
        new_cluster: dict[int, int] = {}
        for pk, cluster in self.cluster_of.items():
            root = graph.find(cluster)
            if root != cluster and pk not in self.new_identities:
                self.absorbed[cluster] = root
            new_cluster[pk] = root
            if pk in self.new_identities:
                self.changed_clusters.add(root)
        self.changed_clusters |= set(self.absorbed.values())
        if self.absorbed:
            # Absorbed graphs move wholesale: their identities, fragments and events.
            for model in (Identity, ProfileFragment, Event):
                column_remap(model, "cluster_id", self.absorbed)
        self.cluster_of = new_cluster

    def _set_new_clusters(self) -> None:
        rows_update(Identity, ["cluster_id"],
                    [(pk, self.cluster_of[pk]) for pk in sorted(self.new_identities)])

    def _store_links(self, pairs: set[tuple[int, int]]) -> None:
        # Pairs of two new identities cannot exist yet; only the others need a look-up.
        maybe = sorted(pair for pair in pairs if not (set(pair) & self.new_identities))
        known: dict[tuple[int, int], int] = {}
        stale: list[int] = []
        for chunk in _chunks(sorted({left for left, _ in maybe})):
            rows = IdentityLink.objects.filter(any_of("left_id", chunk)).values_list(
                "pk", "left_id", "right_id", "last_seen")
            for pk, left, right, last_seen in rows:
                if (left, right) in pairs:
                    known[(left, right)] = pk
                    if last_seen < self.now - LAST_SEEN_PRECISION:
                        stale.append(pk)
        for chunk in _chunks(stale):
            IdentityLink.objects.filter(any_of("pk", chunk)).update(last_seen=self.now)
        rows_insert(IdentityLink, ["sandbox", "left", "right", "last_seen"],
                    [(self.sandbox_id, left, right, self.now)
                     for left, right in sorted(pairs - known.keys())])

    # 3. fragments and events

    def _fragments(self, parsed: list[ParsedRecord]) -> set[int]:
        """Upsert one fragment per (dataset, primary identity); returns those identity pks."""
        by_identity: dict[int, list[ParsedRecord]] = defaultdict(list)
        for p in parsed:
            by_identity[self.identity_pk[p.identities[0]]].append(p)
        identity_ids = sorted(by_identity)
        existing: dict[int, ProfileFragment] = {}
        for chunk in _chunks(identity_ids):
            for fragment in ProfileFragment.objects.filter(dataset=self.dataset,
                                                           identity_id__in=chunk):
                existing[fragment.identity_id] = fragment
        creates, updates = [], []
        for identity_id in identity_ids:
            fragment = existing.get(identity_id)
            attributes = fragment.attributes if fragment else {}
            for p in by_identity[identity_id]:
                body = {k: v for k, v in p.record.items() if k not in RECORD_ONLY_FIELDS}
                attributes = deep_merge(attributes or {}, body)
            last = by_identity[identity_id][-1]
            values = (attributes, last.record["identityMap"], self.cluster_of[identity_id],
                      self.now, last.updated_at or self.now)
            if fragment is None:
                creates.append((self.sandbox_id, self.dataset.pk, identity_id, *values))
            else:
                updates.append((fragment.pk, *values))
        columns = ["attributes", "identity_map", "cluster_id", "ingested_at", "updated_at"]
        rows_insert(ProfileFragment, ["sandbox", "dataset", "identity", *columns], creates)
        rows_update(ProfileFragment, columns, updates)
        return set(identity_ids)

    def _events(self, parsed: list[ParsedRecord]) -> list[ParsedRecord]:
        """Store events not seen before (per sandbox `_id`); returns those stored."""
        first: dict[str, ParsedRecord] = {}
        for p in parsed:
            first.setdefault(p.event_id, p)
        rows = []
        for event_id in sorted(first):
            p = first[event_id]
            identity_id = self.identity_pk[p.identities[0]]
            rows.append((self.sandbox_id, self.dataset.pk, p.event_id, identity_id,
                         self.cluster_of[identity_id], p.timestamp, p.event_type, p.record,
                         self.now))
        # ON CONFLICT DO NOTHING on (sandbox, `_id`): an event stored before, or by a concurrent
        # request, is kept once; RETURNING says which ones this request stored.
        stored = {event_id for (event_id,) in rows_insert(
            Event, ["sandbox", "dataset", "event_id", "identity", "cluster_id", "timestamp",
                    "event_type", "payload", "ingested_at"], rows, returning=["event_id"])}
        return [p for event_id, p in first.items() if event_id in stored]

    # 4. profiles

    def _profiles_of(self, entities: set[int], policies: list[MergePolicy], *,
                     stitches: bool) -> tuple[set[int], set[int]]:
        """(profile pks of these entities, entities some policy of that kind has no profile
        for yet), in one query per chunk."""
        group = [p.pk for p in policies if p.stitches == stitches]
        if not entities or not group:
            return set(), set()
        found: set[int] = set()
        counts: Counter = Counter()
        for chunk in _chunks(sorted(entities)):
            for pk, entity_id in Profile.objects.filter(
                    any_of("entity_id", chunk), merge_policy_id__in=group).values_list(
                    "pk", "entity_id"):
                found.add(pk)
                counts[entity_id] += 1
        return found, {e for e in entities if counts[e] < len(group)}

    # 5. the schema catalogue

    def _catalogue(self, parsed: list[ParsedRecord]) -> None:
        stats: dict[str, list] = {}  # path -> [type, count, Counter of examples]
        for p in parsed:
            _count_leaves(stats, p.record, "")
        if not stats:
            return
        class_name = self.dataset.class_name
        existing: dict[str, SchemaField] = {}
        for chunk in _chunks(sorted(stats)):
            existing.update((f.path, f) for f in SchemaField.objects.filter(
                class_name=class_name, path__in=chunk))
        creates, updates = [], []
        for path, (kind, count, examples) in stats.items():
            fresh = [value for value, _ in examples.most_common(SCHEMA_EXAMPLES)]
            row = existing.get(path)
            if row is None:
                creates.append((self.sandbox_id, class_name, path[:500], kind, fresh, count,
                                self.now))
            else:
                merged = list(dict.fromkeys(list(row.examples) + fresh))[:SCHEMA_EXAMPLES]
                updates.append((row.pk, row.count + count, merged, self.now))
        rows_insert(SchemaField, ["sandbox", "class_name", "path", "type", "examples", "count",
                                  "updated_at"], creates)
        rows_update(SchemaField, ["count", "examples", "updated_at"], updates)


def _count_leaves(stats: dict[str, list], document: dict, prefix: str) -> None:
    """Add each leaf of `document` (as `leaf_paths` walks it, identityMap left out at the top)
    to the catalogue statistics: its type, one more occurrence, its value as an example."""
    for key, value in document.items():
        if not prefix and key == "identityMap":
            continue
        path = f"{prefix}.{key}" if prefix else key
        if type(value) is dict and value:
            _count_leaves(stats, value, path)
            continue
        entry = stats.get(path)
        if entry is None:
            entry = stats[path] = [_json_type(value), 0, Counter()]
        entry[1] += 1
        if not isinstance(value, (dict, list)):
            examples = entry[2]
            example = str(value)[:100]
            if example in examples or len(examples) < 20:  # bounded memory
                examples[example] += 1


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    if value is None:
        return "null"
    return "string"
