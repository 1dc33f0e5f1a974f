"""Batch segment jobs with a history row per definition, schedules, exports, previews.

Invariants:
1. A job is never left PROCESSING forever: workers beat `heartbeat_at`, and a reaper fails jobs
   whose heartbeat is stale (with the reason).
2. Every definition a job evaluates gets a `SegmentJobRun` row: when it ran, how long, the
   counts, and the error if it failed.
"""

from __future__ import annotations

import uuid

from django.db import models

from portal.scope import SandboxScoped


class SegmentJob(SandboxScoped):
    class Status(models.TextChoices):
        NEW = "NEW"
        QUEUED = "QUEUED"
        PROCESSING = "PROCESSING"
        CANCELLING = "CANCELLING"
        CANCELLED = "CANCELLED"
        FAILED = "FAILED"
        SUCCEEDED = "SUCCEEDED"

    FINISHED = (Status.CANCELLED, Status.FAILED, Status.SUCCEEDED)

    class Source(models.TextChoices):
        API = "api"
        SCHEDULER = "scheduler"
        PORTAL = "portal"
        DEMO = "demo"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.NEW)
    source = models.CharField(max_length=12, choices=Source.choices, default=Source.API)
    # ["*"] for every batch definition, or the requested ids.
    requested_segments = models.JSONField(default=list)
    snapshot_at = models.DateTimeField()  # the instant the whole job evaluates at ("now")
    snapshot_name = models.CharField(max_length=200, blank=True)
    schedule = models.ForeignKey("audiences.Schedule", null=True, blank=True,
                                 on_delete=models.SET_NULL, related_name="jobs")
    metrics = models.JSONField(default=dict)
    errors = models.JSONField(default=list)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    superseded_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")
    created_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["sandbox", "status"], name="job_status")]


class SegmentJobRun(SandboxScoped):
    """One definition evaluated by one job: the answer to "when was this last evaluated?"."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"
        SUPERSEDED = "superseded"

    job = models.ForeignKey(SegmentJob, on_delete=models.CASCADE, related_name="runs")
    definition = models.ForeignKey("audiences.SegmentDefinition", null=True,
                                   on_delete=models.SET_NULL, related_name="runs")
    definition_name = models.CharField(max_length=255)
    definition_version = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    evaluator = models.CharField(max_length=20, blank=True)  # "sql", "sql+python", "python"
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    profiles_scanned = models.PositiveIntegerField(default=0)
    qualified = models.PositiveIntegerField(default=0)
    realized = models.PositiveIntegerField(default=0)
    existing = models.PositiveIntegerField(default=0)
    exited = models.PositiveIntegerField(default=0)
    error_code = models.CharField(max_length=50, blank=True)
    error_message = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["job", "definition"], name="run_once_per_job"),
        ]


class Schedule(SandboxScoped):
    class Type(models.TextChoices):
        BATCH_SEGMENTATION = "batch_segmentation"
        EXPORT = "export"

    class State(models.TextChoices):
        ACTIVE = "active"
        INACTIVE = "inactive"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=20, choices=Type.choices,
                            default=Type.BATCH_SEGMENTATION)
    schedule = models.CharField(max_length=120)  # Quartz cron, UTC: "0 0 5 * * ?"
    state = models.CharField(max_length=10, choices=State.choices, default=State.INACTIVE)
    properties = models.JSONField(default=dict)  # {"segments": ["*"]} ...
    is_system = models.BooleanField(default=False)  # the "Schedule all audiences" schedule
    last_run_at = models.DateTimeField(null=True, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]


class ExportJob(SandboxScoped):
    class Status(models.TextChoices):
        NEW = "NEW"
        PROCESSING = "PROCESSING"
        SUCCEEDED = "SUCCEEDED"
        FAILED = "FAILED"
        CANCELLED = "CANCELLED"

    id = models.BigAutoField(primary_key=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.NEW)
    definition = models.ForeignKey("audiences.SegmentDefinition", null=True,
                                   on_delete=models.SET_NULL, related_name="exports")
    file_format = models.CharField(max_length=10, default="csv")  # csv | jsonl
    fields = models.JSONField(default=list)  # attribute paths to include
    statuses = models.JSONField(default=list)  # membership statuses to include
    request = models.JSONField(default=dict)  # the AEP-shaped body as received
    file_path = models.CharField(max_length=500, blank=True)
    metrics = models.JSONField(default=dict)
    errors = models.JSONField(default=list)
    created_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]


class Preview(SandboxScoped):
    """A preview (sample of matching profiles) and its estimate, computed asynchronously."""

    class State(models.TextChoices):
        NEW = "NEW"
        RUNNING = "RUNNING"
        RESULT_READY = "RESULT_READY"
        FAILED = "FAILED"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    expression = models.TextField()
    graph_type = models.CharField(max_length=10, default="pdg")
    merge_policy = models.ForeignKey("audiences.MergePolicy", null=True,
                                     on_delete=models.SET_NULL, related_name="+")
    state = models.CharField(max_length=14, choices=State.choices, default=State.NEW)
    results = models.JSONField(default=list)  # matching profile ids (a sample)
    estimate = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
