"""Segment definitions (audiences), their tags, dependencies and change history.

Invariants:
1. `expression` is the PQL text as the author wrote it (Adobe echoes it verbatim; a `pql/json`
   body is stored as the engine's canonical text). The parsed query's eligibility verdict, the
   ruleset that judged it and its references are stored beside it and recomputed on every edit
   of the rules (services.definitions is the only writer).
2. `evaluation_*` are the methods in force. `requested_evaluation` is what the author asked for;
   when the rules refuse a method the two differ and `eligibility["reasons"]` says why.
3. Dependencies (`inSegment`) form a DAG inside one sandbox.
4. The count fields are denormalised from memberships by the services that write memberships,
   so the browse list never counts rows.
"""

from __future__ import annotations

import uuid

from django.db import models

from portal.scope import SandboxScoped


class Tag(SandboxScoped):
    name = models.CharField(max_length=100)
    category = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["sandbox", "name"], name="tag_once")]

    def __str__(self) -> str:
        return self.name


class SegmentDefinition(SandboxScoped):
    class Lifecycle(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"
        INACTIVE = "inactive", "Inactive"
        ARCHIVED = "archived", "Archived"

    class Origin(models.TextChoices):
        SEGMENTATION = "REAL_TIME_CUSTOMER_PROFILE", "Segmentation Service"
        CUSTOM_UPLOAD = "CUSTOM_UPLOAD", "Custom upload"
        COMPOSITION = "AUDIENCE_ORCHESTRATION", "Audience composition"
        AUDIENCE_MANAGER = "AUDIENCE_MANAGER", "Audience Manager"

    class Method(models.TextChoices):
        BATCH = "batch", "Batch"
        STREAMING = "streaming", "Streaming"
        EDGE = "edge", "Edge"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)

    expression = models.TextField(blank=True)  # PQL text (empty for custom uploads)
    expression_format = models.CharField(max_length=20, default="pql/text")
    schema_name = models.CharField(max_length=64, default="_xdm.context.profile")
    merge_policy = models.ForeignKey("audiences.MergePolicy", on_delete=models.PROTECT,
                                     related_name="definitions")

    evaluation_batch = models.BooleanField(default=True)
    evaluation_continuous = models.BooleanField(default=False)  # streaming
    evaluation_synchronous = models.BooleanField(default=False)  # edge
    requested_evaluation = models.JSONField(default=dict, blank=True)
    # {"batch": bool, "streaming": bool, "edge": bool, "queryType": str,
    #  "reasons": {method: [..]}, "suggestions": {method: [..]}}
    eligibility = models.JSONField(default=dict, blank=True)
    eligibility_ruleset = models.CharField(max_length=20, blank=True)
    # {"profilePaths": [...], "eventTypes": [...] | None, "segmentIds": [...],
    #  "lookbackSeconds": int | None, "usesEvents": bool}
    references = models.JSONField(default=dict, blank=True)

    ttl_in_days = models.PositiveIntegerField(null=True, blank=True)
    lifecycle_state = models.CharField(max_length=12, choices=Lifecycle.choices,
                                       default=Lifecycle.PUBLISHED)
    origin = models.CharField(max_length=40, choices=Origin.choices,
                              default=Origin.SEGMENTATION)
    namespace = models.CharField(max_length=40, default="AEPSegments")
    audience_type = models.CharField(max_length=30, default="SegmentDefinition")
    audience_id = models.CharField(max_length=255, blank=True)  # client id for external ones
    labels = models.JSONField(default=list, blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="definitions")
    dependencies = models.ManyToManyField("self", symmetrical=False, blank=True,
                                          related_name="dependents")
    created_in_builder = models.BooleanField(default=False)
    # External audiences: `datasetId`, `linkedAudienceRef`, `audienceMeta` as the client sent them.
    external_meta = models.JSONField(default=dict, blank=True)
    # Custom uploads: when the uploaded membership expires.
    expires_at = models.DateTimeField(null=True, blank=True)

    version = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    updated_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    # Denormalised for the browse list (written by the membership services).
    qualified_count = models.PositiveIntegerField(default=0)
    realized_count = models.PositiveIntegerField(default=0)
    existing_count = models.PositiveIntegerField(default=0)
    exited_count = models.PositiveIntegerField(default=0)
    counts_updated_at = models.DateTimeField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    last_evaluation_status = models.CharField(max_length=20, blank=True)
    last_evaluation_ms = models.PositiveIntegerField(null=True, blank=True)
    last_evaluation_error = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["sandbox", "name"], name="definition_name_once"),
        ]
        indexes = [
            models.Index(fields=["sandbox", "updated_at"], name="definition_updated"),
            models.Index(fields=["sandbox", "created_at"], name="definition_created"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def methods(self) -> list[str]:
        out = []
        if self.evaluation_batch:
            out.append(self.Method.BATCH)
        if self.evaluation_continuous:
            out.append(self.Method.STREAMING)
        if self.evaluation_synchronous:
            out.append(self.Method.EDGE)
        return out

    @property
    def update_frequency(self) -> str:
        """The one method the portal shows: edge > streaming > batch."""
        if self.evaluation_synchronous:
            return self.Method.EDGE
        if self.evaluation_continuous:
            return self.Method.STREAMING
        return self.Method.BATCH


class DefinitionHistory(SandboxScoped):
    """Who changed what and when, with the PQL before and after."""

    class Action(models.TextChoices):
        CREATED = "created"
        UPDATED = "updated"
        DELETED = "deleted"
        METHOD_CHANGED = "method_changed"

    definition = models.ForeignKey(SegmentDefinition, null=True, on_delete=models.SET_NULL,
                                   related_name="history")
    definition_uuid = models.UUIDField(db_index=True)
    action = models.CharField(max_length=20, choices=Action.choices)
    user = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    at = models.DateTimeField()
    changed_fields = models.JSONField(default=list)
    old_values = models.JSONField(default=dict)
    new_values = models.JSONField(default=dict)
    old_expression = models.TextField(blank=True)
    new_expression = models.TextField(blank=True)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "definition history"
