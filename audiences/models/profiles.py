"""Profile data: datasets, identities and their graph, fragments, events, merge policies, and the
merged profiles that segmentation reads.

Invariants:
1. An identity is (namespace code, value) within a sandbox. `Identity.cluster_id` is the id of the
   representative identity of its graph (union-find, representative = smallest id). Fragments and
   events carry the `cluster_id` of their primary identity, and move with it when graphs merge.
2. A merged `Profile` exists per (merge policy, entity): the entity is the identity graph
   (`cluster_id`) when the policy stitches (`pdg`), else the single identity (`identity_id`).
   A profile's events are therefore `Event.cluster_id == entity_id` (pdg) or
   `Event.identity_id == entity_id` (none), restricted to the policy's event datasets if it lists
   any.
3. Events are unique per (sandbox, `_id`): ingesting one twice stores it once.
"""

from __future__ import annotations

import secrets
import uuid

from django.db import models

from portal.scope import SandboxScoped

PROFILE_CLASS = "_xdm.context.profile"
EVENT_CLASS = "_xdm.context.experienceevent"


def new_dataset_id() -> str:
    # Catalog ids are 24 lowercase hex characters, like Adobe's.
    return secrets.token_hex(12)


def new_inlet_id() -> str:
    return secrets.token_hex(32)


class Dataset(SandboxScoped):
    class Class(models.TextChoices):
        PROFILE = PROFILE_CLASS, "XDM Individual Profile"
        EVENT = EVENT_CLASS, "XDM ExperienceEvent"

    id = models.CharField(primary_key=True, max_length=32, default=new_dataset_id)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    class_name = models.CharField(max_length=64, choices=Class.choices)
    schema_ref = models.JSONField(default=dict)  # {"id": ..., "contentType": ...}
    tags = models.JSONField(default=dict)  # {"unifiedProfile": ["enabled:true"], ...}
    created_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["sandbox", "name"], name="dataset_name_per_sandbox"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_profile(self) -> bool:
        return self.class_name == PROFILE_CLASS

    @property
    def profile_enabled(self) -> bool:
        return "enabled:true" in (self.tags or {}).get("unifiedProfile", [])


class StreamingConnection(SandboxScoped):
    """An HTTP inlet: `POST /collection/{inlet_id}` lands messages in this sandbox."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    inlet_id = models.CharField(max_length=64, unique=True, default=new_inlet_id)
    authentication_required = models.BooleanField(default=False)
    source_name = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class IngestionBatch(SandboxScoped):
    """One request or file of ingested records, with what was accepted and rejected."""

    class Source(models.TextChoices):
        STREAMING = "streaming"
        IMPORT = "import"
        UPLOAD = "upload"
        EDGE = "edge"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="batches")
    connection = models.ForeignKey(StreamingConnection, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="batches")
    source = models.CharField(max_length=20, choices=Source.choices)
    received = models.PositiveIntegerField(default=0)
    accepted = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list)  # first rejections: [{"index", "reason"}]
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]


class IdentityNamespace(SandboxScoped):
    """Namespace codes seen in a sandbox: the standard ones and custom ones (CRMID...)."""

    class IdType(models.TextChoices):
        COOKIE = "COOKIE"
        CROSS_DEVICE = "CROSS_DEVICE"
        DEVICE = "DEVICE"
        EMAIL = "EMAIL"
        PHONE = "PHONE"
        NON_PEOPLE = "NON_PEOPLE"
        PARTNER = "PARTNER"

    code = models.CharField(max_length=100)
    name = models.CharField(max_length=200)
    id_type = models.CharField(max_length=20, choices=IdType.choices,
                               default=IdType.CROSS_DEVICE)
    custom = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.UniqueConstraint(fields=["sandbox", "code"], name="namespace_code_per_sandbox"),
        ]

    def __str__(self) -> str:
        return self.code


class Identity(SandboxScoped):
    namespace = models.CharField(max_length=100)  # canonical code, e.g. "Email", "ECID"
    value = models.CharField(max_length=1024)
    cluster_id = models.BigIntegerField(null=True, db_index=True)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sandbox", "namespace", "value"],
                                    name="identity_per_sandbox"),
        ]

    def __str__(self) -> str:
        return f"{self.namespace}:{self.value}"


class IdentityLink(SandboxScoped):
    """Two identities observed together in one record or event (an edge of the graph)."""

    left = models.ForeignKey(Identity, on_delete=models.CASCADE, related_name="+")
    right = models.ForeignKey(Identity, on_delete=models.CASCADE, related_name="+")
    last_seen = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["left", "right"], name="identity_link_once"),
        ]
        indexes = [models.Index(fields=["right"], name="identity_link_right")]


class ProfileFragment(SandboxScoped):
    """One record of one profile dataset for one primary identity (deep-merged on upsert)."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="fragments")
    identity = models.ForeignKey(Identity, on_delete=models.CASCADE, related_name="fragments")
    cluster_id = models.BigIntegerField(db_index=True)
    attributes = models.JSONField(default=dict)
    identity_map = models.JSONField(default=dict)
    ingested_at = models.DateTimeField()
    # extSourceSystemAudit.lastUpdatedDate when the record carries it, else the ingestion time.
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "identity"], name="fragment_per_identity"),
        ]


class Event(SandboxScoped):
    """An XDM ExperienceEvent. `payload` is the whole xdmEntity as ingested.

    The hottest insert of all, so no index is kept that another already serves: the sandbox
    by `event_once`, the identity by `event_identity_ts`; the dataset needs a plain index for
    cascading deletes, not the LIKE one a character key would get.

    The sandbox and dataset keys have no database constraint: every event of a request would
    otherwise share-lock the same two parent rows, and concurrent requests then pile up on
    them (measured: two ingesting clients 4.1–5.1k -> 5.0–5.4k events/s on PostgreSQL). Only
    `ingest_records` writes events, with ids it has just read, and deleting a sandbox or a
    dataset removes its events through the ORM's cascade."""

    sandbox = models.ForeignKey("portal.Sandbox", on_delete=models.CASCADE, related_name="+",
                                db_index=False, db_constraint=False)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="events",
                                db_index=False, db_constraint=False)
    event_id = models.CharField(max_length=256)  # XDM `_id`, the dedupe key
    identity = models.ForeignKey(Identity, on_delete=models.CASCADE, related_name="events",
                                 db_index=False)
    cluster_id = models.BigIntegerField()
    timestamp = models.DateTimeField()
    event_type = models.CharField(max_length=200, blank=True)
    payload = models.JSONField()
    ingested_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sandbox", "event_id"], name="event_once"),
        ]
        indexes = [
            models.Index(fields=["dataset"], name="event_dataset"),
            # A profile's events in time order (pdg and none), the batch compiler's Exists().
            models.Index(fields=["cluster_id", "timestamp"], name="event_cluster_ts"),
            models.Index(fields=["identity", "timestamp"], name="event_identity_ts"),
            # "Which profiles had an event of this type in the window": batch pre-filtering.
            models.Index(fields=["sandbox", "event_type", "timestamp"], name="event_type_ts"),
            # One profile's events of given types in a window: the batch compiler's count,
            # sum and CHAIN subqueries seek (entity, type) instead of filtering every event.
            models.Index(fields=["cluster_id", "event_type", "timestamp"],
                         name="event_cluster_type_ts"),
            models.Index(fields=["identity", "event_type", "timestamp"],
                         name="event_identity_type_ts"),
        ]


class MergePolicy(SandboxScoped):
    class IdentityGraph(models.TextChoices):
        NONE = "none", "None"
        PDG = "pdg", "Private graph"

    class AttributeMerge(models.TextChoices):
        TIMESTAMP_ORDERED = "timestampOrdered", "Timestamp ordered"
        DATASET_PRECEDENCE = "dataSetPrecedence", "Dataset precedence"

    class RebuildState(models.TextChoices):
        READY = "ready"
        REBUILDING = "rebuilding"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    schema_name = models.CharField(max_length=64, default=PROFILE_CLASS)
    identity_graph = models.CharField(max_length=10, choices=IdentityGraph.choices,
                                      default=IdentityGraph.PDG)
    attribute_merge = models.CharField(max_length=20, choices=AttributeMerge.choices,
                                       default=AttributeMerge.TIMESTAMP_ORDERED)
    # dataSetPrecedence: profile dataset ids, highest priority first (unlisted ones are ignored).
    dataset_order = models.JSONField(default=list, blank=True)
    # Event datasets whose events count (empty: all of them).
    event_datasets = models.JSONField(default=list, blank=True)
    is_default = models.BooleanField(default=False)
    is_active_on_edge = models.BooleanField(default=False)
    version = models.PositiveIntegerField(default=1)
    rebuild_state = models.CharField(max_length=12, choices=RebuildState.choices,
                                     default=RebuildState.READY)
    rebuild_progress = models.JSONField(default=dict, blank=True)  # {"done": n, "total": m}
    created_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "merge policies"
        constraints = [
            models.UniqueConstraint(fields=["sandbox"], condition=models.Q(is_default=True),
                                    name="one_default_merge_policy"),
            models.UniqueConstraint(fields=["sandbox"],
                                    condition=models.Q(is_active_on_edge=True),
                                    name="one_edge_merge_policy"),
            models.UniqueConstraint(fields=["sandbox", "name"], name="merge_policy_name"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def stitches(self) -> bool:
        return self.identity_graph == self.IdentityGraph.PDG


class Profile(SandboxScoped):
    """A merged profile under one merge policy: what segments read."""

    merge_policy = models.ForeignKey(MergePolicy, on_delete=models.CASCADE,
                                     related_name="profiles")
    # cluster_id under a stitching (pdg) policy, identity id under `none`.
    entity_id = models.BigIntegerField()
    attributes = models.JSONField(default=dict)
    identity_map = models.JSONField(default=dict)
    primary_namespace = models.CharField(max_length=100, blank=True)
    primary_id = models.CharField(max_length=1024, blank=True)
    identity_count = models.PositiveIntegerField(default=1)
    # Graphs over the identity limit are left out of segmentation, as in AEP.
    excluded = models.BooleanField(default=False)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["merge_policy", "entity_id"],
                                    name="profile_per_entity"),
        ]

    def __str__(self) -> str:
        return f"{self.primary_namespace}:{self.primary_id}"


class SchemaField(SandboxScoped):
    """The schema catalogue, discovered from ingested data (Segment Builder's field trees)."""

    class_name = models.CharField(max_length=64)
    path = models.CharField(max_length=500)
    type = models.CharField(max_length=20)  # string, integer, number, boolean, object, array...
    examples = models.JSONField(default=list)  # a few distinct values, most frequent first
    count = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["class_name", "path"]
        constraints = [
            models.UniqueConstraint(fields=["sandbox", "class_name", "path"],
                                    name="schema_field_once"),
        ]
