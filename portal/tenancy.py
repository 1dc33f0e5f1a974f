"""Resolving which organization and sandbox a portal user is working in."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User

from portal.models import Member, Sandbox

SESSION_KEY = "sift_sandbox_id"


@dataclass(frozen=True)
class PortalContext:
    sandbox: Sandbox
    role: str
    sandboxes: list[Sandbox]


def sandboxes_for(user: User) -> list[Sandbox]:
    return list(Sandbox.objects.filter(organization__members__user=user)
                .select_related("organization").order_by("organization__ims_org_id",
                                                         "-is_default", "name"))


def resolve_portal_context(user: User, session) -> PortalContext | None:
    """The sandbox kept in the session, else the user's first default sandbox."""
    sandboxes = sandboxes_for(user)
    if not sandboxes:
        return None
    chosen = None
    wanted = session.get(SESSION_KEY)
    if wanted:
        chosen = next((s for s in sandboxes if str(s.sandbox_id) == wanted), None)
    if chosen is None:
        chosen = next((s for s in sandboxes if s.is_default), sandboxes[0])
        session[SESSION_KEY] = str(chosen.sandbox_id)
    role = Member.objects.get(user=user, organization_id=chosen.organization_id).role
    return PortalContext(sandbox=chosen, role=role, sandboxes=sandboxes)


def switch_sandbox(user: User, session, sandbox_id: str) -> Sandbox | None:
    """Remember the chosen sandbox, only if the user belongs to its organization."""
    sandbox = next((s for s in sandboxes_for(user) if str(s.sandbox_id) == sandbox_id), None)
    if sandbox is not None:
        session[SESSION_KEY] = str(sandbox.sandbox_id)
    return sandbox
