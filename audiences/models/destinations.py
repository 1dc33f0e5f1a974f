"""Destinations (where audiences go), activations (which audience, which identities, which
attributes), deliveries (one per membership change per webhook destination) and file export runs.

Invariants:
1. A `Delivery` exists at most once per (destination, membership change): its `idempotency_key`
   is derived from both, is sent with the change, and lets a receiver drop a repeat.
2. A delivery is `pending` until a 2xx answer (`delivered`) or its last allowed attempt
   (`dead`, the dead-letter list). Only an explicit replay turns `dead` back into `pending`.
3. A sender owns a pending delivery only while `claim` holds its token and `claimed_until` is in
   the future (claimed by a conditional UPDATE), so two workers never POST the same row at once.
4. Every file export writes one `FileExportRun` with its manifest; an incremental export starts
   after the `last_change_id` of the previous successful run of the same destination.
"""

from __future__ import annotations

import uuid

from django.db import models

from portal.scope import SandboxScoped


class Destination(SandboxScoped):
    class Kind(models.TextChoices):
        WEBHOOK = "webhook", "Webhook (streaming)"
        FILE = "file", "File export (batch)"

    class FileFormat(models.TextChoices):
        CSV = "csv", "CSV"
        JSONL = "jsonl", "JSON Lines"

    class Mode(models.TextChoices):
        FULL = "full", "Full"
        INCREMENTAL = "incremental", "Incremental"

    class Schedule(models.TextChoices):
        AFTER_JOB = "after_job", "After each batch job"
        HOURLY = "hourly", "Hourly"
        DAILY = "daily", "Daily"
        ON_DEMAND = "on_demand", "On demand"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    # Webhook
    url = models.URLField(max_length=2000, blank=True)
    secret = models.CharField(max_length=100, blank=True)  # HMAC key of X-Sift-Signature
    # File export
    folder = models.CharField(max_length=500, blank=True)  # relative to SIFT_EXPORT_DIR
    file_format = models.CharField(max_length=5, choices=FileFormat.choices,
                                   default=FileFormat.CSV)
    mode = models.CharField(max_length=12, choices=Mode.choices, default=Mode.FULL)
    schedule = models.CharField(max_length=10, choices=Schedule.choices,
                                default=Schedule.AFTER_JOB)
    last_export_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["sandbox", "name"], name="destination_name_once"),
        ]

    def __str__(self) -> str:
        return self.name


class Activation(SandboxScoped):
    """One audience sent to one destination, as identities of one namespace plus attributes."""

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE,
                                    related_name="activations")
    definition = models.ForeignKey("audiences.SegmentDefinition", on_delete=models.CASCADE,
                                   related_name="activations")
    namespace = models.CharField(max_length=100, default="Email")
    attributes = models.JSONField(default=list, blank=True)  # dotted profile paths
    created_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["destination", "definition"],
                                    name="activation_once"),
        ]


class Delivery(SandboxScoped):
    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        DEAD = "dead"

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE,
                                    related_name="deliveries")
    definition = models.ForeignKey("audiences.SegmentDefinition", null=True,
                                   on_delete=models.SET_NULL, related_name="+")
    change = models.ForeignKey("audiences.MembershipChange", null=True,
                               on_delete=models.SET_NULL, related_name="+")
    idempotency_key = models.CharField(max_length=80, unique=True)
    # The change as the receiver gets it, frozen when the change was recorded.
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claim = models.UUIDField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    replays = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["destination", "status", "next_attempt_at"],
                         name="delivery_due"),
            models.Index(fields=["status", "next_attempt_at"], name="delivery_sweep",
                         condition=models.Q(status="pending")),
        ]


class FileExportRun(SandboxScoped):
    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE,
                                    related_name="export_runs")
    mode = models.CharField(max_length=12, choices=Destination.Mode.choices)
    trigger = models.CharField(max_length=20)  # after_job | hourly | daily | on_demand
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    first_change_id = models.BigIntegerField(default=0)  # exclusive lower bound (incremental)
    last_change_id = models.BigIntegerField(default=0)  # inclusive upper bound of this run
    rows = models.PositiveIntegerField(default=0)
    # {"files": [{"audienceId", "audienceName", "path", "rows", "bytes", "sha256"}], ...}
    manifest = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
