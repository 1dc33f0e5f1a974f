"""Who is in which audience, every transition in an append-only log, and the time buckets
rolled up from that log for "Profiles over time".

Invariants:
1. One `Membership` per (definition, profile). Status is realized | existing | exited.
2. Every status change of a membership appends exactly one `MembershipChange` in the same
   transaction; re-applying the same evaluation result appends nothing (transitions are
   idempotent), so at-least-once delivery never double-counts.
3. `MembershipChange.id` only grows: consumers (metrics roll-up, destinations) keep a cursor.
"""

from __future__ import annotations

from django.db import models

from portal.scope import SandboxScoped


class Status(models.TextChoices):
    REALIZED = "realized"
    EXISTING = "existing"
    EXITED = "exited"


QUALIFIED = (Status.REALIZED, Status.EXISTING)


class Source(models.TextChoices):
    BATCH = "batch"
    STREAMING = "streaming"
    EDGE = "edge"
    UPLOAD = "upload"
    SYSTEM = "system"  # identity merges, expiry, deleted profiles


class Membership(SandboxScoped):
    definition = models.ForeignKey("audiences.SegmentDefinition", on_delete=models.CASCADE,
                                   related_name="memberships")
    profile = models.ForeignKey("audiences.Profile", on_delete=models.CASCADE,
                                related_name="memberships")
    status = models.CharField(max_length=10, choices=Status.choices)
    last_qualification_time = models.DateTimeField()
    source = models.CharField(max_length=10, choices=Source.choices)
    version = models.PositiveIntegerField(default=1)  # definition version it was judged by
    # Streaming: the instant a time window may lapse; a sweep re-checks the profile then.
    recheck_at = models.DateTimeField(null=True, blank=True)
    # Custom uploads and anything with a TTL: the membership is not trusted after this.
    valid_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["definition", "profile"], name="membership_once"),
        ]
        indexes = [
            models.Index(fields=["definition", "status"], name="membership_status"),
            models.Index(fields=["profile", "status"], name="membership_profile"),
            models.Index(fields=["recheck_at"], name="membership_recheck",
                         condition=models.Q(recheck_at__isnull=False)),
        ]

    @property
    def is_active(self) -> bool:
        return self.status in QUALIFIED


class MembershipChange(SandboxScoped):
    """One status transition. Append-only."""

    definition = models.ForeignKey("audiences.SegmentDefinition", on_delete=models.CASCADE,
                                   related_name="changes")
    profile = models.ForeignKey("audiences.Profile", null=True, on_delete=models.SET_NULL,
                                related_name="+")
    profile_key = models.CharField(max_length=1100, blank=True)  # "ns:id", kept after deletes
    old_status = models.CharField(max_length=10, choices=Status.choices, blank=True)
    new_status = models.CharField(max_length=10, choices=Status.choices)
    at = models.DateTimeField()  # lastQualificationTime of the transition
    source = models.CharField(max_length=10, choices=Source.choices)
    job = models.ForeignKey("audiences.SegmentJob", null=True, blank=True,
                            on_delete=models.SET_NULL, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["definition", "at"], name="change_definition_at"),
        ]


class MetricBucket(SandboxScoped):
    """Per-audience counts per hour or day, rolled up from the change log."""

    class Granularity(models.TextChoices):
        HOUR = "hour"
        DAY = "day"

    definition = models.ForeignKey("audiences.SegmentDefinition", on_delete=models.CASCADE,
                                   related_name="buckets")
    granularity = models.CharField(max_length=4, choices=Granularity.choices)
    start = models.DateTimeField()
    total = models.PositiveIntegerField(default=0)  # qualified at the end of the bucket
    realized = models.PositiveIntegerField(default=0)  # entered during the bucket
    exited = models.PositiveIntegerField(default=0)  # left during the bucket
    realized_streaming = models.PositiveIntegerField(default=0)  # of which streaming/edge
    exited_streaming = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["start"]
        constraints = [
            models.UniqueConstraint(fields=["definition", "granularity", "start"],
                                    name="bucket_once"),
        ]


class Cursor(models.Model):
    """A named position in an append-only log (e.g. the metrics roll-up's last change id)."""

    name = models.CharField(max_length=100, unique=True)
    position = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name}@{self.position}"
