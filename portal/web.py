"""Portal plumbing shared by every page: full page or htmx partial, role checks."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse

from portal.models import WRITE_ROLES, Role


def render_page_or_partial(request, page: str, partial: str, context: dict,
                           *, status: int = 200) -> TemplateResponse:
    """One decision for every swappable page: htmx requests get the fragment only."""
    template = partial if getattr(request, "htmx", False) and not request.htmx.boosted else page
    response = TemplateResponse(request, template, context, status=status)
    response.headers["Vary"] = "HX-Request"
    return response


def portal_view(*, role: str | None = None) -> Callable:
    """Login required, a sandbox in scope, and (optionally) a minimum role: 'write' or 'admin'."""

    def decorator(view: Callable) -> Callable:
        @login_required
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            context = getattr(request, "portal", None)
            if context is None:
                raise PermissionDenied("You are not a member of any organization.")
            if role == "admin" and context.role != Role.ADMIN:
                raise PermissionDenied("Only administrators can open this page.")
            if role == "write" and context.role not in WRITE_ROLES:
                raise PermissionDenied("Viewers can look but not change anything.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
