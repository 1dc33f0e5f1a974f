"""Portal pages of the profile store: datasets and streaming connections, profile look-up, and
merge policies (list, a four-step create/edit wizard, default, active on edge, delete).

Thin: forms validate, one service call writes, templates render. Every write is admin-only;
the datasets and profile pages are readable by every member.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from audiences.models import (
    EVENT_CLASS,
    PROFILE_CLASS,
    Dataset,
    IngestionBatch,
    MergePolicy,
    ProfileFragment,
)
from audiences.services import datasets as dataset_service
from audiences.services import merge_policies as policy_service
from audiences.services.datasets import EVENT_SCHEMA_ID, PROFILE_SCHEMA_ID
from audiences.services.profiles import merge_fragments, profile_lookup, schema_fields
from portal.errors import SiftError
from portal.web import portal_view, render_page_or_partial

RECENT_BATCHES = 20
SCHEMA_FIELDS_SHOWN = 200
PREVIEW_PROFILES = 5
WIZARD_STEPS = ("configure", "profile datasets", "event datasets", "review")


# --- Datasets and streaming connections ---------------------------------------------------


class DatasetForm(forms.Form):
    name = forms.CharField(max_length=200)
    schema = forms.ChoiceField(choices=[(PROFILE_SCHEMA_ID, "XDM Individual Profile"),
                                        (EVENT_SCHEMA_ID, "XDM ExperienceEvent")],
                               label="Schema class")
    schema_id = forms.CharField(required=False, max_length=500, label="Tenant schema id",
                                help_text="Optional: a schema id extending the class.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class ConnectionForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, max_length=1000)
    authenticated = forms.BooleanField(required=False, label="Require a bearer token")


def _datasets_context(request, *, dataset_form=None, connection_form=None) -> dict:
    return {
        "nav": "datasets",
        "datasets": dataset_service.dataset_list(),
        "connections": dataset_service.streaming_connection_list(),
        "batches": IngestionBatch.objects.select_related("dataset", "connection")
        .order_by("-created_at")[:RECENT_BATCHES],
        "dataset_form": dataset_form or DatasetForm(),
        "connection_form": connection_form or ConnectionForm(),
        "collection_base": request.build_absolute_uri("/collection/"),
        "schema_fields": schema_fields()[:SCHEMA_FIELDS_SHOWN],
    }


@require_safe
@portal_view()
def datasets(request):
    return render_page_or_partial(request, "audiences/profiles/datasets.html",
                                  "audiences/profiles/datasets.html", _datasets_context(request))


@require_POST
@portal_view(role="admin")
def dataset_create(request):
    form = DatasetForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            dataset = dataset_service.dataset_create(
                name=data["name"], schema_ref={"id": data["schema_id"] or data["schema"]},
                description=data["description"], user=request.user)
        except SiftError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, f"Dataset {dataset.name} created ({dataset.pk}).")
            return redirect("audiences:datasets")
    return render_page_or_partial(request, "audiences/profiles/datasets.html",
                                  "audiences/profiles/datasets.html",
                                  _datasets_context(request, dataset_form=form), status=400)


@require_POST
@portal_view(role="admin")
def connection_create(request):
    form = ConnectionForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        connection = dataset_service.streaming_connection_create(
            name=data["name"], description=data["description"],
            authentication_required=data["authenticated"], user=request.user)
        messages.success(request, f"Streaming connection {connection.name} created; inlet "
                                  f"{connection.inlet_id}.")
        return redirect("audiences:datasets")
    return render_page_or_partial(request, "audiences/profiles/datasets.html",
                                  "audiences/profiles/datasets.html",
                                  _datasets_context(request, connection_form=form), status=400)


# --- Profile look-up ------------------------------------------------------------------------


class LookupForm(forms.Form):
    namespace = forms.CharField(max_length=100, initial="Email")
    identity = forms.CharField(max_length=1024)
    policy = forms.ModelChoiceField(queryset=MergePolicy.objects.unscoped().none(), required=False,
                                    empty_label="Default merge policy", label="Merge policy")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["policy"].queryset = MergePolicy.objects.order_by("name")


def _tree(document, prefix: str = "") -> list[dict]:
    """Rows of an attribute tree for the template: path depth, key, leaf value."""
    rows: list[dict] = []
    for key, value in sorted((document or {}).items()):
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            rows.append({"depth": path.count("."), "key": key, "path": path, "value": None})
            rows.extend(_tree(value, path))
        else:
            rows.append({"depth": path.count("."), "key": key, "path": path, "value": value})
    return rows


@require_safe
@portal_view()
def profiles(request):
    form = LookupForm(request.GET or None)
    context: dict = {"nav": "profiles", "form": form, "searched": False}
    if form.is_valid():
        data = form.cleaned_data
        context["searched"] = True
        try:
            view = profile_lookup(namespace=data["namespace"], value=data["identity"],
                                  merge_policy=data["policy"], check_graph_limit=False)
        except SiftError as error:
            context["error"] = error.message
            view = None
        context["view"] = view
        if view is not None:
            context["tree"] = _tree(view.profile.attributes)
            context["fragment_trees"] = [(f, _tree(f.attributes)) for f in view.fragments]
    return render_page_or_partial(request, "audiences/profiles/profiles.html",
                                  "audiences/profiles/_profile.html", context)


# --- Merge policies ---------------------------------------------------------------------------


class PolicyForm(forms.Form):
    """All wizard fields; each step validates its own and carries the others hidden."""

    name = forms.CharField(max_length=200)
    identity_graph = forms.ChoiceField(choices=MergePolicy.IdentityGraph.choices,
                                       label="ID stitching", initial="pdg")
    attribute_merge = forms.ChoiceField(choices=MergePolicy.AttributeMerge.choices,
                                        label="Merge method", initial="timestampOrdered")
    is_default = forms.BooleanField(required=False, label="Default merge policy")
    is_active_on_edge = forms.BooleanField(required=False, label="Active on edge")
    dataset_order = forms.CharField(required=False, widget=forms.HiddenInput)
    event_datasets = forms.CharField(required=False, widget=forms.HiddenInput)

    def ids(self, field: str) -> list[str]:
        raw = self.cleaned_data.get(field) or ""
        return [value for value in raw.split(",") if value]


def _ordered_from_post(post) -> str:
    """The precedence inputs (`priority-<dataset id>` = 1, 2, …; blank = left out)."""
    ranked = []
    for key, value in post.items():
        if key.startswith("priority-") and value.strip():
            try:
                ranked.append((int(value), key.removeprefix("priority-")))
            except ValueError:
                continue
    return ",".join(dataset_id for _, dataset_id in sorted(ranked))


def _preview(policy: MergePolicy) -> list[dict]:
    """The merged attributes a few existing people would get under the (unsaved) policy."""
    key = "cluster_id" if policy.stitches else "identity_id"
    entities = list(ProfileFragment.objects.order_by(key).values_list(key, flat=True)
                    .distinct()[:PREVIEW_PROFILES])
    by_entity: dict[int, list] = {}
    for fragment in ProfileFragment.objects.filter(**{f"{key}__in": entities}).select_related(
            "identity"):
        by_entity.setdefault(getattr(fragment, key), []).append(fragment)
    return [{"identity": str(fragments[0].identity),
             "tree": _tree(merge_fragments(policy, fragments))}
            for fragments in by_entity.values()]


def _wizard_context(form: PolicyForm, step: int, policy: MergePolicy | None) -> dict:
    profile_sets = list(Dataset.objects.filter(class_name=PROFILE_CLASS).order_by("name"))
    event_sets = list(Dataset.objects.filter(class_name=EVENT_CLASS).order_by("name"))
    context = {"nav": "merge-policies", "form": form, "step": step, "steps": WIZARD_STEPS,
               "policy": policy, "profile_datasets": profile_sets, "event_datasets": event_sets}
    if form.is_bound and form.is_valid():
        order = form.ids("dataset_order")
        context["priority"] = {d: i + 1 for i, d in enumerate(order)}
        context["chosen_events"] = set(form.ids("event_datasets"))
        names = {d.pk: d.name for d in profile_sets + event_sets}
        context["order_names"] = [names.get(d, d) for d in order]
        context["event_names"] = [names.get(d, d) for d in form.ids("event_datasets")]
        if step == len(WIZARD_STEPS) - 1:
            draft = MergePolicy(identity_graph=form.cleaned_data["identity_graph"],
                                attribute_merge=form.cleaned_data["attribute_merge"],
                                dataset_order=order)
            context["preview"] = _preview(draft)
    return context


def _initial(policy: MergePolicy | None) -> dict:
    if policy is None:
        return {}
    return {"name": policy.name, "identity_graph": policy.identity_graph,
            "attribute_merge": policy.attribute_merge, "is_default": policy.is_default,
            "is_active_on_edge": policy.is_active_on_edge,
            "dataset_order": ",".join(policy.dataset_order or []),
            "event_datasets": ",".join(policy.event_datasets or [])}


def _policy_or_404(policy_id) -> MergePolicy:
    policy = MergePolicy.objects.filter(pk=policy_id).first()
    if policy is None:
        raise Http404("No such merge policy in this sandbox.")
    return policy


@require_safe
@portal_view(role="admin")
def merge_policies(request):
    policies = MergePolicy.objects.order_by("-is_default", "name")
    return render_page_or_partial(request, "audiences/profiles/merge_policies.html",
                                  "audiences/profiles/merge_policies.html",
                                  {"policies": policies, "nav": "merge-policies"})


@require_http_methods(["GET", "POST"])
@portal_view(role="admin")
def merge_policy_wizard(request, policy_id=None):
    """GET: step 1 of a new (or the existing) policy. POST: validate the step, then go `next`,
    `back`, or `save` (from the review step)."""
    policy = _policy_or_404(policy_id) if policy_id else None
    template = "audiences/profiles/merge_policy_wizard.html"
    if request.method != "POST":
        form = PolicyForm(initial=_initial(policy))
        return render_page_or_partial(request, template, template,
                                      _wizard_context(form, 0, policy))
    data = request.POST.copy()
    step = min(max(int(data.get("step", "0") or 0), 0), len(WIZARD_STEPS) - 1)
    if step == 1:
        data["dataset_order"] = _ordered_from_post(request.POST)
    if step == 2:
        data["event_datasets"] = ",".join(request.POST.getlist("event_dataset"))
    form = PolicyForm(data)
    action = request.POST.get("action", "next")
    if not form.is_valid():
        return render_page_or_partial(request, template, template,
                                      _wizard_context(form, step, policy), status=400)
    if action == "save" and step == len(WIZARD_STEPS) - 1:
        fields = {k: form.cleaned_data[k] for k in ("name", "identity_graph", "attribute_merge",
                                                    "is_active_on_edge")}
        fields["dataset_order"] = form.ids("dataset_order")
        fields["event_datasets"] = form.ids("event_datasets")
        try:
            if policy is None:
                saved = policy_service.merge_policy_create(
                    **fields, is_default=form.cleaned_data["is_default"], now=timezone.now(),
                    user=request.user)
            else:
                if form.cleaned_data["is_default"]:
                    fields["is_default"] = True
                saved = policy_service.merge_policy_update(merge_policy=policy, changes=fields,
                                                           now=timezone.now())
        except SiftError as error:
            form.add_error(None, error.message)
            return render_page_or_partial(request, template, template,
                                          _wizard_context(form, step, policy), status=400)
        messages.success(request, f"Merge policy {saved.name} saved; its profiles are being "
                                  "rebuilt.")
        return redirect("audiences:merge_policies")
    step = step - 1 if action == "back" else step + 1
    step = min(max(step, 0), len(WIZARD_STEPS) - 1)
    return render_page_or_partial(request, template, template,
                                  _wizard_context(form, step, policy))


@require_POST
@portal_view(role="admin")
def merge_policy_action(request, policy_id, action: str):
    policy = _policy_or_404(policy_id)
    now = timezone.now()
    try:
        if action == "default":
            policy_service.merge_policy_make_default(merge_policy=policy, now=now)
            messages.success(request, f"{policy.name} is now the default merge policy.")
        elif action == "edge":
            active = not policy.is_active_on_edge
            policy_service.merge_policy_set_edge(merge_policy=policy, active=active, now=now)
            messages.success(request, f"{policy.name} is {'now' if active else 'no longer'} "
                                      "active on edge.")
        elif action == "delete":
            policy_service.merge_policy_delete(merge_policy=policy)
            messages.success(request, f"Merge policy {policy.name} deleted.")
    except SiftError as error:
        messages.error(request, error.message)
    return redirect(reverse("audiences:merge_policies"))
