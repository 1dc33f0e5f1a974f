"""The Audiences page (browse): filters, sorting, paging, column chooser, row and bulk actions,
the evaluation summary, "Schedule all audiences" and the CSV import. Thin: services do the work.
"""

from __future__ import annotations

import csv

from django.contrib import messages
from django.http import Http404, HttpResponseRedirect, QueryDict, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST, require_safe

from audiences.models import IdentityNamespace, SegmentDefinition
from audiences.services import definitions as defs
from audiences.services import portal as portal_service
from audiences.services.uploads import audience_import_csv, csv_preview
from audiences.web.charts import evaluation_pie
from audiences.web.filters import AudienceFilter, sort_key
from portal.errors import ErrorCode, SiftError
from portal.web import portal_view, render_page_or_partial

Definition = SegmentDefinition
PAGE_SIZE = 50
# (key, label, shown by default, sort key or "")
COLUMNS = [
    ("count", "Profile count", True, "count"),
    ("origin", "Origin", True, "origin"),
    ("created", "Created", True, "created"),
    ("updated", "Last updated", True, "updated"),
    ("tags", "Tags", True, ""),
    ("breakdown", "Breakdown", True, ""),
    ("lifecycle", "Lifecycle status", False, "lifecycle"),
    ("frequency", "Update frequency", False, ""),
    ("updated_by", "Last updated by", False, ""),
    ("description", "Description", False, ""),
    ("created_by", "Created by", False, ""),
    ("evaluated", "Last evaluated", False, "evaluated"),
]
DEFAULT_COLUMNS = [key for key, _, default, _ in COLUMNS if default]
STANDARD_NAMESPACES = ["Email", "ECID", "CRMID", "Phone", "AAID", "GAID", "IDFA"]


def definition_or_404(definition_id) -> Definition:
    """The definition in the request's sandbox; anything else is a plain 404 page."""
    try:
        return defs.definition_get(definition_id=definition_id)
    except SiftError:
        raise Http404("No such audience in this sandbox.") from None


def _columns(request) -> list[str]:
    chosen = [c for c in request.GET.getlist("cols") if c in {k for k, *_ in COLUMNS}]
    return chosen or DEFAULT_COLUMNS


def _page(request) -> int:
    try:
        return max(1, int(request.GET.get("page", "1")))
    except ValueError:
        return 1


def _filtered(params: QueryDict) -> AudienceFilter:
    return AudienceFilter(params, queryset=Definition.objects.all())


ROW_ACTIONS = ("copy", "evaluate", "publish", "deactivate", "delete")
_PLACEHOLDER = "00000000-0000-0000-0000-000000000000"


def _row_urls() -> dict[str, str]:
    """URL templates for one row, reversed once per page: reversing ~8 URLs for each of 50 rows
    cost more than the database work of the page."""
    urls = {name: reverse(f"audiences:{name}", args=[_PLACEHOLDER])
            for name in ("detail", "edit", "export")}
    urls.update({action: reverse("audiences:action", args=[_PLACEHOLDER, action])
                 for action in ROW_ACTIONS})
    return urls


def _breakdown(d: Definition) -> dict:
    """Percent widths of realized / existing / exited for the bar (exited since the last job)."""
    total = d.realized_count + d.existing_count + d.exited_count
    if not total:
        return {}
    return {k: round(100 * v / total, 1) for k, v in
            (("realized", d.realized_count), ("existing", d.existing_count),
             ("exited", d.exited_count))}


@require_safe
@portal_view()
def browse(request):
    """The list, count-less paged (one row beyond the page says whether there is a next)."""
    filterset = _filtered(request.GET)
    sort, sort_col, order = sort_key(request.GET.get("sort", "name"))
    page = _page(request)
    rows = list(filterset.qs.select_related("created_by", "updated_by")
                .prefetch_related("tags").order_by(*order)
                [(page - 1) * PAGE_SIZE: page * PAGE_SIZE + 1])
    has_next = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    templates = _row_urls()
    for d in rows:
        d.bar = _breakdown(d)
        d.urls = {name: url.replace(_PLACEHOLDER, str(d.pk)) for name, url in templates.items()}
    columns = _columns(request)
    context = {
        "nav": "audiences", "filter": filterset, "definitions": rows, "page": page,
        "has_next": has_next, "sort": sort, "sort_col": sort_col,
        "sort_desc": sort.startswith("-"), "columns": columns,
        "all_columns": COLUMNS,
        "filtered": any(value for key in request.GET if key not in ("sort", "page", "cols")
                        for value in request.GET.getlist(key)),
        "querystring": request.GET.urlencode(),
    }
    if not request.htmx:
        summary = portal_service.evaluation_summary()
        context.update(summary=summary, summary_chart=evaluation_pie(summary))
    return render_page_or_partial(request, "audiences/portal/browse.html",
                                  "audiences/portal/_results.html", context)


def _back(request) -> HttpResponseRedirect:
    target = request.POST.get("next") or reverse("audiences:browse")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("audiences:browse")
    return redirect(target)


def segment_job_start(*, definitions: list[Definition], user) -> str:
    """Ask the batch service for a segment job; a clear message until that service exists."""
    try:
        from audiences.services.batch import segment_job_create
    except ImportError:
        raise SiftError(ErrorCode.SERVER_ERROR, "Batch evaluation is not available in this "
                        "installation yet (the batch job service is missing).") from None
    job = segment_job_create(segment_ids=[str(d.pk) for d in definitions], source="portal",
                             now=timezone.now(), user=user)
    return f"Segment job {job.pk} started for {len(definitions)} audience(s)."


def _row_action(request, action: str, definition: Definition) -> str:
    now = timezone.now()
    if action == "copy":
        copy = defs.definition_copy(definition=definition, user=request.user, now=now)
        return f"Copied to {copy.name!r} (draft)."
    if action == "evaluate":
        return segment_job_start(definitions=[definition], user=request.user)
    if action in ("publish", "deactivate"):
        state = Definition.Lifecycle.PUBLISHED if action == "publish" \
            else Definition.Lifecycle.INACTIVE
        defs.definition_set_lifecycle(definition=definition, state=state, user=request.user,
                                      now=now)
        return f"{definition.name} is now {state}."
    if action == "delete":
        defs.definition_delete(definition=definition, user=request.user, now=now)
        return f"Deleted {definition.name}."
    raise SiftError(ErrorCode.INVALID, f"Unknown action {action!r}.")


@require_POST
@portal_view(role="write")
def audience_action(request, definition_id, action):
    """One row action; the outcome (or the refusal, e.g. dependents) is a message."""
    definition = definition_or_404(definition_id)
    try:
        messages.success(request, _row_action(request, action, definition))
    except SiftError as exc:
        messages.error(request, exc.message)
    return _back(request)


def _bulk_targets(request) -> list[Definition]:
    """The ticked rows, or every audience matching the filters when "all matching" is on."""
    if request.POST.get("all_matching"):
        return list(_filtered(QueryDict(request.POST.get("filters", ""))).qs.order_by("name"))
    ids = [i for i in request.POST.getlist("ids") if defs.is_uuid(i)]
    return list(Definition.objects.filter(pk__in=ids).order_by("name"))


@require_POST
@portal_view(role="write")
def bulk_action(request):
    targets = _bulk_targets(request)
    action = request.POST.get("action", "")
    now = timezone.now()
    if not targets:
        messages.error(request, "Select at least one audience first.")
        return _back(request)
    try:
        if action == "tags":
            tags = [t.strip() for t in request.POST.get("tags", "").split(",") if t.strip()]
            if not tags:
                raise SiftError(ErrorCode.INVALID, "Type the tags to add, separated by commas.")
            changed = defs.definition_tags_add(definitions=targets, tags=tags, user=request.user,
                                               now=now)
            messages.success(request, f"Tagged {changed} audience(s) with {', '.join(tags)}.")
        elif action == "evaluate":
            messages.success(request, segment_job_start(definitions=targets, user=request.user))
        elif action == "delete":
            _bulk_delete(request, targets, now)
        else:
            raise SiftError(ErrorCode.INVALID, f"Unknown bulk action {action!r}.")
    except SiftError as exc:
        messages.error(request, exc.message)
    return _back(request)


def _bulk_delete(request, targets: list[Definition], now) -> None:
    """Delete each audience that has no dependents; report the ones kept and why."""
    deleted, kept = 0, []
    for definition in targets:
        try:
            defs.definition_delete(definition=definition, user=request.user, now=now)
            deleted += 1
        except SiftError as exc:
            kept.append(exc.message)
    if deleted:
        messages.success(request, f"Deleted {deleted} audience(s).")
    for reason in kept:
        messages.error(request, reason)


@require_POST
@portal_view(role="write")
def schedule_toggle(request):
    enabled = request.POST.get("enabled") == "on"
    try:
        portal_service.schedule_all_set(enabled=enabled, user=request.user, now=timezone.now())
        messages.success(request, "All batch audiences are scheduled daily." if enabled
                         else "Scheduled evaluation of all audiences is off.")
    except SiftError as exc:
        messages.error(request, exc.message)
    return _back(request)


@require_safe
@portal_view()
def audience_export(request, definition_id):
    """Download the audience's current members as CSV."""
    definition = definition_or_404(definition_id)
    writer = csv.writer(_Echo())
    rows = (writer.writerow(row) for row in
            portal_service.membership_export_rows(definition=definition))
    response = StreamingHttpResponse(rows, content_type="text/csv")
    filename = f"{definition.name}.csv".replace('"', "")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class _Echo:
    """csv.writer target that hands each line back instead of buffering it."""

    def write(self, value: str) -> str:
        return value


def _namespaces() -> list[str]:
    stored = list(IdentityNamespace.objects.values_list("code", flat=True))
    return sorted(set(stored) | set(STANDARD_NAMESPACES), key=str.lower)


def _upload(request) -> bytes:
    upload = request.FILES.get("file")
    if upload is None:
        raise SiftError(ErrorCode.INVALID, "Choose a CSV file.", {"field": "file"})
    return upload.read()


@require_POST
@portal_view(role="write")
def import_preview(request):
    """htmx: the first rows of the chosen CSV and its columns for the identity column select."""
    context: dict = {"namespaces": _namespaces()}
    try:
        context["preview"] = csv_preview(data=_upload(request))
    except SiftError as exc:
        context["error"] = exc.message
    return TemplateResponse(request, "audiences/portal/_import_preview.html", context)


@portal_view(role="write")
def import_audience(request):
    """Import audience: name, CSV, identity column + namespace, data expiration."""
    context: dict = {"nav": "audiences", "namespaces": _namespaces(), "form": request.POST}
    if request.method == "POST":
        try:
            data = _upload(request)
            days = request.POST.get("expiration_days") or None
            result = audience_import_csv(
                name=request.POST.get("name", ""), description=request.POST.get("description", ""),
                data=data, identity_column=request.POST.get("identity_column", ""),
                namespace=request.POST.get("namespace", ""),
                expiration_days=int(days) if days else None, user=request.user,
                now=timezone.now())
            messages.success(request, f"Imported {result.definition.name}: "
                                      f"{result.matched} of {result.identities} identities matched "
                                      "a profile.")
            return redirect("audiences:detail", definition_id=result.definition.pk)
        except SiftError as exc:
            context["error"] = exc.message
        except ValueError:
            context["error"] = "Data expiration must be a whole number of days."
    return TemplateResponse(request, "audiences/portal/import.html", context,
                            status=400 if context.get("error") else 200)

