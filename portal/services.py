"""Tenancy use cases: the only write path for organizations, sandboxes, members and tokens."""

from __future__ import annotations

import secrets

from django.contrib.auth.models import User
from django.db import transaction

from portal.errors import ErrorCode, SiftError
from portal.models import ApiToken, Member, Organization, Role, Sandbox, hash_token


def organization_create(*, ims_org_id: str, name: str = "", sandbox_name: str = "prod"
                        ) -> tuple[Organization, bool]:
    """Create an organization with its default production sandbox; idempotent."""
    if not ims_org_id.strip():
        raise SiftError(ErrorCode.INVALID, "An IMS organization id is required.")
    with transaction.atomic():
        org, created = Organization.objects.get_or_create(
            ims_org_id=ims_org_id, defaults={"name": name or ims_org_id.split("@")[0]})
        if not org.sandboxes.exists():
            Sandbox.objects.create(organization=org, name=sandbox_name, title=sandbox_name.title(),
                                   type=Sandbox.Type.PRODUCTION, is_default=True)
    _bootstrap_sandboxes(org)
    return org, created


def sandbox_create(*, ims_org_id: str, name: str, type: str = Sandbox.Type.DEVELOPMENT,
                   title: str = "") -> tuple[Sandbox, bool]:
    org = organization_get(ims_org_id=ims_org_id)
    if type not in Sandbox.Type.values:
        raise SiftError(ErrorCode.INVALID, f"Sandbox type must be one of {Sandbox.Type.values}.")
    sandbox, created = Sandbox.objects.get_or_create(
        organization=org, name=name,
        defaults={"type": type, "title": title or name.title(),
                  "is_default": not org.sandboxes.exists()})
    _bootstrap_sandboxes(org)
    return sandbox, created


def _bootstrap_sandboxes(org: Organization) -> None:
    """Give each sandbox what a working sandbox needs (the default merge policy, ...)."""
    from audiences.services.bootstrap import sandbox_bootstrap

    for sandbox in org.sandboxes.all():
        sandbox_bootstrap(sandbox=sandbox)


def organization_get(*, ims_org_id: str) -> Organization:
    org = Organization.objects.filter(ims_org_id=ims_org_id).first()
    if org is None:
        raise SiftError(ErrorCode.NOT_FOUND, f"Organization {ims_org_id} does not exist.")
    return org


def user_create(*, username: str, ims_org_id: str, role: str, password: str | None = None,
                email: str = "") -> tuple[User, bool]:
    """Create (or update the role and password of) a user in an organization."""
    if role not in Role.values:
        raise SiftError(ErrorCode.INVALID, f"Role must be one of {', '.join(Role.values)}.")
    org = organization_get(ims_org_id=ims_org_id)
    with transaction.atomic():
        user, created = User.objects.get_or_create(username=username,
                                                   defaults={"email": email})
        if password is not None:
            user.set_password(password)
            user.save(update_fields=["password"])
        elif created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        Member.objects.update_or_create(user=user, organization=org, defaults={"role": role})
    return user, created


def api_token_create(*, username: str, ims_org_id: str | None = None, name: str = ""
                     ) -> tuple[ApiToken, str]:
    """Create a token; returns it with the raw value, which is never stored or shown again."""
    user = User.objects.filter(username=username).first()
    if user is None:
        raise SiftError(ErrorCode.NOT_FOUND, f"User {username} does not exist.")
    members = Member.objects.filter(user=user).select_related("organization")
    if ims_org_id:
        members = members.filter(organization__ims_org_id=ims_org_id)
    member = members.order_by("organization__ims_org_id").first()
    if member is None:
        raise SiftError(ErrorCode.NOT_FOUND,
                        f"User {username} is not a member of "
                        f"{ims_org_id or 'any organization'}.")
    raw = "sift_" + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, organization=member.organization, name=name,
                                    token_hash=hash_token(raw), prefix=raw[:12])
    return token, raw
