"""Portal shell views: sandbox switching, the sandboxes page, health."""

from __future__ import annotations

from django.contrib import messages
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST, require_safe

from portal.errors import SiftError
from portal.models import Sandbox
from portal.services import sandbox_create
from portal.tenancy import switch_sandbox
from portal.web import portal_view


@require_POST
@portal_view()
def sandbox_switch(request):
    sandbox = switch_sandbox(request.user, request.session, request.POST.get("sandbox", ""))
    if sandbox is None:
        messages.error(request, "That sandbox does not exist or is not yours.")
    else:
        messages.success(request, f"Switched to sandbox {sandbox.name} "
                                  f"({sandbox.organization.ims_org_id}).")
    target = request.POST.get("next") or request.headers.get("Referer") or "/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/"
    return redirect(target)


@portal_view(role="admin")
def sandboxes(request):
    org = request.portal.sandbox.organization
    if request.method == "POST":
        try:
            sandbox, created = sandbox_create(ims_org_id=org.ims_org_id,
                                              name=request.POST.get("name", "").strip(),
                                              type=request.POST.get("type", "development"))
        except SiftError as exc:
            messages.error(request, exc.message)
        else:
            if created:
                messages.success(request, f"Sandbox {sandbox.name} created.")
            else:
                messages.info(request, f"Sandbox {sandbox.name} already exists.")
        return redirect("sandboxes")
    items = Sandbox.objects.filter(organization=org).order_by("-is_default", "name")
    return TemplateResponse(request, "portal/sandboxes.html",
                            {"sandboxes": items, "organization": org, "nav": "sandboxes",
                             "types": Sandbox.Type.choices})


@require_safe
def health(request):
    """Database and broker status; 503 when either is down."""
    checks = {}
    healthy = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = {"status": "ok", "vendor": connection.vendor}
    except Exception as exc:  # report any driver failure as unhealthy, with its text
        healthy = False
        checks["database"] = {"status": "error", "error": str(exc)}
    from portal.celery import app

    if app.conf.task_always_eager:
        checks["broker"] = {"status": "ok", "mode": "in-process"}
    else:
        try:
            with app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
            checks["broker"] = {"status": "ok", "mode": "broker",
                                "transport": app.conf.broker_url.split(":", 1)[0]}
        except Exception as exc:  # kombu raises transport-specific errors
            healthy = False
            checks["broker"] = {"status": "error", "error": str(exc)}
    return JsonResponse({"status": "ok" if healthy else "unhealthy", **checks},
                        status=200 if healthy else 503)
