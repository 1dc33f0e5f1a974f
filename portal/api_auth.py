"""API authentication: bearer tokens, the organization header, and the sandbox header.

A request is authenticated by `Authorization: Bearer <token>`. The token belongs to one user in
one organization. `x-gw-ims-org-id` (optional; the token's organization when absent) must name
that organization, or the answer is 403. `x-sandbox-name` selects the sandbox (the default one
when absent; 404 if unknown). `x-api-key` is accepted and recorded on the token. On success the
request's sandbox scope is activated, so every scoped query of the view is filtered by it; the
tenancy middleware resets it when the response leaves.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from portal import scope
from portal.errors import ErrorCode, SiftError
from portal.models import ApiToken, Member, Sandbox, hash_token

LAST_USED_PRECISION = timedelta(minutes=1)


class _Failed(exceptions.AuthenticationFailed):
    def __init__(self, message: str, code: ErrorCode) -> None:
        super().__init__(message)
        self.sift_code = code


def resolve_sandbox(organization, name: str | None) -> Sandbox:
    sandboxes = Sandbox.objects.filter(organization=organization)
    sandbox = sandboxes.filter(name=name).first() if name else sandboxes.filter(
        is_default=True).first()
    if sandbox is None:
        raise SiftError(
            ErrorCode.SANDBOX_NOT_FOUND,
            f"Sandbox {name!r} does not exist in organization {organization.ims_org_id}."
            if name else f"Organization {organization.ims_org_id} has no default sandbox.",
            status=404,
        )
    return sandbox


class BearerTokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != "bearer":
            raise _Failed("Authorization header must be 'Bearer <token>'.",
                          ErrorCode.TOKEN_INVALID)
        token = (ApiToken.objects.select_related("user", "organization")
                 .filter(token_hash=hash_token(parts[1]), revoked_at__isnull=True).first())
        if token is None or not token.user.is_active:
            raise _Failed("Oauth token is not valid.", ErrorCode.TOKEN_INVALID)

        org_header = request.headers.get("x-gw-ims-org-id")
        if org_header and org_header != token.organization.ims_org_id:
            raise SiftError(ErrorCode.ORG_FORBIDDEN,
                            f"This token may not act for organization {org_header}.",
                            status=403)
        member = Member.objects.filter(user=token.user, organization=token.organization).first()
        if member is None:
            raise SiftError(ErrorCode.ORG_FORBIDDEN,
                            "The token's user is no longer a member of its organization.",
                            status=403)
        sandbox = resolve_sandbox(token.organization, request.headers.get("x-sandbox-name"))

        # "Last used" to the minute: a write per request would cost more than the request.
        now = timezone.now()
        updates = {}
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_PRECISION:
            updates["last_used_at"] = now
        api_key = request.headers.get("x-api-key", "")[:200]
        if api_key and api_key != token.last_api_key:
            updates["last_api_key"] = api_key
        if updates:
            ApiToken.objects.filter(pk=token.pk).update(**updates)

        scope.activate(scope.Scope(sandbox=sandbox, user=token.user, role=member.role))
        request.sift_scope = scope.current_scope()
        return (token.user, token)

    def authenticate_header(self, request):
        return self.keyword
