"""Tenancy: organizations, sandboxes, who may do what in them, and API tokens."""

from __future__ import annotations

import hashlib
import uuid

from django.conf import settings
from django.db import models


class Organization(models.Model):
    """An IMS organization, e.g. `ACME1234@AdobeOrg`."""

    ims_org_id = models.CharField(max_length=100, unique=True)
    name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["ims_org_id"]

    def __str__(self) -> str:
        return self.ims_org_id


class Sandbox(models.Model):
    class Type(models.TextChoices):
        PRODUCTION = "production"
        DEVELOPMENT = "development"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE,
                                     related_name="sandboxes")
    sandbox_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.SlugField(max_length=100)
    title = models.CharField(max_length=200, blank=True)
    type = models.CharField(max_length=20, choices=Type.choices, default=Type.DEVELOPMENT)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization_id", "-is_default", "name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="sandbox_name_per_org"),
            models.UniqueConstraint(fields=["organization"], condition=models.Q(is_default=True),
                                    name="one_default_sandbox_per_org"),
        ]

    def __str__(self) -> str:
        return f"{self.organization.ims_org_id}/{self.name}"

    def to_aep(self) -> dict:
        """The `sandbox` object AEP embeds in every resource."""
        return {
            "sandboxId": str(self.sandbox_id),
            "sandboxName": self.name,
            "type": self.type,
            "default": self.is_default,
        }


class Role(models.TextChoices):
    ADMIN = "admin"
    MARKETER = "marketer"
    VIEWER = "viewer"


WRITE_ROLES = frozenset({Role.ADMIN, Role.MARKETER})


class Member(models.Model):
    """A user's role in one organization."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE,
                                     related_name="members")
    role = models.CharField(max_length=20, choices=Role.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="one_role_per_org"),
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.organization}"


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A bearer token for the API; only its SHA-256 is stored, the raw value is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="api_tokens")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE,
                                     related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_api_key = models.CharField(max_length=200, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"
