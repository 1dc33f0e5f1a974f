"""Sets the sandbox scope for each portal request, and always clears it afterwards."""

from __future__ import annotations

from portal import scope
from portal.tenancy import resolve_portal_context

API_PREFIXES = ("/data/", "/collection/")


class TenancyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # A clean slate per request: worker threads are reused, scopes must never leak.
        token = scope.activate(None)
        try:
            request.portal = None
            user = getattr(request, "user", None)
            is_api = request.path.startswith(API_PREFIXES)
            if not is_api and user is not None and user.is_authenticated:
                context = resolve_portal_context(user, request.session)
                if context is not None:
                    request.portal = context
                    scope.activate(scope.Scope(sandbox=context.sandbox, user=user,
                                               role=context.role))
            return self.get_response(request)
        finally:
            scope.deactivate(token)
