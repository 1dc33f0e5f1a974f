"""Portal: the Destinations page (list, create, edit, test connection, activations, delivery
history, dead-letter replay, file exports). Thin: forms validate types, services decide."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from audiences.models import (
    Delivery,
    Destination,
    FileExportRun,
    SchemaField,
    SegmentDefinition,
)
from audiences.services import destinations as service
from audiences.services.definitions import definition_get
from portal.errors import SiftError
from portal.models import WRITE_ROLES
from portal.web import portal_view, render_page_or_partial

HISTORY_LIMIT = 50


class DestinationForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    kind = forms.ChoiceField(choices=Destination.Kind.choices)
    enabled = forms.BooleanField(required=False, initial=True)
    url = forms.CharField(required=False, max_length=2000, label="Webhook URL",
                          help_text="Webhooks: Sift POSTs signed JSON here")
    folder = forms.CharField(required=False, max_length=500,
                             help_text="File exports: a folder relative to the export "
                                       "directory")
    file_format = forms.ChoiceField(choices=Destination.FileFormat.choices, label="Format")
    mode = forms.ChoiceField(choices=Destination.Mode.choices)
    schedule = forms.ChoiceField(choices=Destination.Schedule.choices)


class ActivationForm(forms.Form):
    definition = forms.CharField(label="Audience")
    namespace = forms.CharField(max_length=100, initial="Email")
    attributes = forms.CharField(required=False,
                                 help_text="Profile paths separated by commas")

    def attribute_list(self) -> list[str]:
        return [a.strip() for a in self.cleaned_data["attributes"].split(",") if a.strip()]


FILE_ONLY = ("folder", "file_format", "mode", "schedule")


def _edit_form(destination: Destination, data=None) -> DestinationForm:
    """The settings form without the kind (fixed) and without the other kind's fields."""
    initial = {f: getattr(destination, f) for f in ("name", "description", "enabled", "url",
                                                    *FILE_ONLY)}
    form = DestinationForm(data, initial=initial)
    for name in ("kind", *(FILE_ONLY if destination.kind == Destination.Kind.WEBHOOK
                           else ("url",))):
        del form.fields[name]
    return form


def _fields(form: DestinationForm) -> dict:
    data = dict(form.cleaned_data)
    data.pop("kind", None)
    return data


@require_http_methods(["GET", "HEAD", "POST"])
@portal_view()
def destinations(request):
    """The list, and (POST, writers) the create form."""
    form = DestinationForm(initial={"kind": Destination.Kind.WEBHOOK})
    status = 200
    if request.method == "POST":
        if request.portal.role not in WRITE_ROLES:
            raise PermissionDenied("Viewers can look but not change anything.")
        form = DestinationForm(request.POST)
        if form.is_valid():
            try:
                destination = service.destination_create(
                    **_fields(form), kind=form.cleaned_data["kind"], user=request.user,
                    now=timezone.now())
            except SiftError as error:
                form.add_error(error.details.get("field") if error.details.get("field")
                               in form.fields else None, error.message)
            else:
                messages.success(request, f"Destination {destination.name} created.")
                return redirect("audiences:destination", destination_id=destination.pk)
        status = 400
    rows = Destination.objects.order_by("name")[:200]
    return render_page_or_partial(request, "audiences/destinations/list.html",
                                  "audiences/destinations/list.html",
                                  {"destinations": rows, "form": form, "nav": "destinations"},
                                  status=status)


def _detail_context(request, destination: Destination, **extra) -> dict:
    status = request.GET.get("status", "")
    deliveries = destination.deliveries.select_related("definition").order_by("-pk")
    if status in Delivery.Status.values:
        deliveries = deliveries.filter(status=status)
    return {
        "destination": destination, "nav": "destinations",
        "form": extra.pop("form", None) or _edit_form(destination),
        "activation_form": extra.pop("activation_form", None) or ActivationForm(),
        "activations": destination.activations.select_related("definition"),
        "audiences": SegmentDefinition.objects.exclude(
            activations__destination=destination).order_by("name")[:500],
        "schema_paths": SchemaField.objects.filter(class_name="_xdm.context.profile")
        .order_by("path").values_list("path", flat=True)[:500],
        "deliveries": deliveries[:HISTORY_LIMIT], "status": status,
        "statuses": Delivery.Status.values,
        "counts": service.delivery_counts(destination=destination),
        "runs": FileExportRun.objects.filter(destination=destination)[:20],
        **extra,
    }


@require_safe
@portal_view()
def destination(request, destination_id):
    target = _get_or_404(destination_id)
    return render_page_or_partial(request, "audiences/destinations/detail.html",
                                  "audiences/destinations/_deliveries.html",
                                  _detail_context(request, target))


def _get_or_404(destination_id) -> Destination:
    """The destination of the current sandbox, or the portal's 404 page."""
    try:
        return service.destination_get(destination_id=destination_id)
    except SiftError as error:
        raise Http404(error.message) from None


@require_POST
@portal_view(role="write")
def destination_edit(request, destination_id):
    target = _get_or_404(destination_id)
    form = _edit_form(target, request.POST)
    if form.is_valid():
        try:
            service.destination_update(destination=target, changes=_fields(form),
                                       rotate_secret="rotate_secret" in request.POST,
                                       now=timezone.now())
        except SiftError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, "Destination saved.")
            return redirect("audiences:destination", destination_id=target.pk)
    target.refresh_from_db()
    return TemplateResponse(request, "audiences/destinations/detail.html",
                            _detail_context(request, target, form=form), status=400)


@require_POST
@portal_view(role="write")
def destination_delete(request, destination_id):
    target = _get_or_404(destination_id)
    service.destination_delete(destination=target)
    messages.success(request, f"Destination {target.name} deleted.")
    return redirect("audiences:destinations")


@require_POST
@portal_view(role="write")
def destination_test(request, destination_id):
    target = _get_or_404(destination_id)
    result = service.destination_test(destination=target, now=timezone.now())
    return TemplateResponse(request, "audiences/destinations/_test_result.html",
                            {"result": result})


@require_POST
@portal_view(role="write")
def activation_add(request, destination_id):
    target = _get_or_404(destination_id)
    form = ActivationForm(request.POST)
    if form.is_valid():
        try:
            definition = definition_get(definition_id=form.cleaned_data["definition"])
            service.activation_set(destination=target, definition=definition,
                                   namespace=form.cleaned_data["namespace"],
                                   attributes=form.attribute_list(), user=request.user,
                                   now=timezone.now())
        except SiftError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, f"{definition.name} activated.")
            return redirect("audiences:destination", destination_id=target.pk)
    return TemplateResponse(request, "audiences/destinations/detail.html",
                            _detail_context(request, target, activation_form=form), status=400)


@require_POST
@portal_view(role="write")
def activation_remove(request, destination_id, activation_id):
    target = _get_or_404(destination_id)
    try:
        activation = service.activation_get(destination=target, activation_id=activation_id)
    except SiftError as error:
        messages.error(request, error.message)
    else:
        service.activation_delete(activation=activation)
        messages.success(request, f"{activation.definition.name} deactivated.")
    return redirect("audiences:destination", destination_id=target.pk)


@require_POST
@portal_view(role="admin")
def delivery_replay(request, destination_id):
    target = _get_or_404(destination_id)
    ids = [int(i) for i in request.POST.getlist("delivery") if i.isdigit() and len(i) < 19]
    replayed = service.delivery_replay(destination=target, delivery_ids=ids or None,
                                       now=timezone.now())
    messages.success(request, f"{replayed} dead-letter deliveries replayed.")
    return redirect("audiences:destination", destination_id=target.pk)


@require_POST
@portal_view(role="write")
def destination_export(request, destination_id):
    target = _get_or_404(destination_id)
    try:
        run = service.file_export_run(destination=target, trigger="on_demand",
                                      now=timezone.now())
    except SiftError as error:
        messages.error(request, error.message)
    else:
        if run.status == FileExportRun.Status.SUCCEEDED:
            messages.success(request, f"Exported {run.rows} rows ({run.mode}).")
        else:
            messages.error(request, f"The export failed: {run.error}")
    return redirect("audiences:destination", destination_id=target.pk)
