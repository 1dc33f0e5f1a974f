"""Segment Builder: Fields | rule canvas + code view | Audience properties.

Every canvas edit and every keystroke in the code view posts the whole builder form to
`builder_sync` (htmx, debounced), which answers with the regions that changed, swapped
out-of-band: the canvas, the PQL, the live validation and the evaluation-method list. The code
view is the source of truth when saving; the canvas redraws it whenever it can
(`canvas.from_pql`), and says so when it cannot.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from audiences.models import MergePolicy, Preview, SchemaField, SegmentDefinition
from audiences.models.profiles import EVENT_CLASS, PROFILE_CLASS
from audiences.services import definitions as defs
from audiences.services.previews import preview_create, preview_get
from audiences.web import canvas as C
from audiences.web.audiences import definition_or_404
from portal.errors import SiftError
from portal.web import portal_view

Definition = SegmentDefinition
METHODS = [("batch", "Batch"), ("streaming", "Streaming"), ("edge", "Edge")]
# Shown until the schema catalogue has discovered fields from ingested data.
STANDARD_ATTRIBUTES = [
    ("person.name.firstName", "string"), ("person.name.lastName", "string"),
    ("person.birthDate", "date"), ("person.gender", "string"),
    ("personalEmail.address", "string"), ("mobilePhone.number", "string"),
    ("homeAddress.city", "string"), ("homeAddress.stateProvince", "string"),
    ("homeAddress.countryISO", "string"), ("homeAddress.postalCode", "string"),
    ("loyalty.tier", "string"), ("loyalty.points", "integer"),
    ("customer.lifetimeValue", "number"), ("consents.marketing.email.val", "string"),
]
STANDARD_EVENT_TYPES = [
    "commerce.checkouts", "commerce.purchases", "commerce.productViews",
    "commerce.productListAdds", "commerce.productListRemovals", "commerce.abandons",
    "web.webpagedetails.pageViews", "directMarketing.emailOpened",
    "directMarketing.emailClicked",
]
CHOICES = {"time_kinds": C.TIME_KINDS, "units": C.UNITS, "count_ops": C.COUNT_OPS,
           "gaps": C.GAPS, "agg_cmps": C.AGG_CMPS, "aggregates": C.AGGREGATES}
STEP_FIELDS = ("event_type", "time", "amount", "unit", "date1", "date2", "gap", "gap_amount",
               "gap_unit")
EVENT_FIELDS = ("count_op", "n", "n2", "agg_field", "agg_cmp")
ATTR_FIELDS = ("path", "type", "op", "value", "value2", "time", "amount", "unit", "date1",
               "date2")


# --- the Fields pane ----------------------------------------------------------------------------


def _attributes() -> list[tuple[str, str]]:
    stored = list(SchemaField.objects.filter(class_name=PROFILE_CLASS)
                  .exclude(type__in=("object", "array")).values_list("path", "type")[:2000])
    return stored or STANDARD_ATTRIBUTES


def _tree(paths: list[tuple[str, str]]) -> list[dict]:
    """Nested folders for the Attributes tree: [{"name", "children", "path", "type"}]."""
    root: dict = {"children": {}}
    for path, type_ in sorted(paths):
        node = root
        for part in path.split("."):
            node = node["children"].setdefault(part, {"name": part, "children": {}})
        node.update(path=path, type=C.field_type(type_))

    def listed(node: dict) -> list[dict]:
        return [{**child, "children": listed(child)} for child in node["children"].values()]

    return listed(root)


def _event_types() -> list[str]:
    field = SchemaField.objects.filter(class_name=EVENT_CLASS, path="eventType").first()
    seen = [str(v) for v in (field.examples if field else [])]
    return sorted(set(seen) | set(STANDARD_EVENT_TYPES)) if not seen else seen


def _audiences(exclude) -> list[Definition]:
    return list(Definition.objects.exclude(pk=exclude).exclude(
        lifecycle_state__in=defs.UNUSABLE_STATES).only("pk", "name").order_by("name")[:300])


# --- reading the posted canvas ------------------------------------------------------------------


def canvas_from_post(post) -> dict:
    """The canvas the form describes (`c0_mode`, `c0_r1_op`, `c0_r1_s0_event_type`, ...)."""
    containers = []
    ci = 0
    while f"c{ci}_mode" in post:
        rules, ri = [], 0
        while f"c{ci}_r{ri}_kind" in post:
            prefix = f"c{ci}_r{ri}_"
            kind = post[prefix + "kind"]
            # Inputs a rule does not show yet (e.g. the amount before "In the last" is chosen)
            # take the defaults of a new rule.
            if kind == "attr":
                fresh = C.new_attr(post.get(prefix + "path", ""), post.get(prefix + "type", ""))
                rules.append({**fresh, **{f: post[prefix + f] for f in ATTR_FIELDS
                                          if prefix + f in post}})
            elif kind == "event":
                steps, si = [], 0
                while f"{prefix}s{si}_event_type" in post:
                    fresh = C.new_step("", first=si == 0)
                    steps.append({**fresh, **{f: post[f"{prefix}s{si}_{f}"] for f in STEP_FIELDS
                                              if f"{prefix}s{si}_{f}" in post}})
                    si += 1
                fresh = C.new_event("")
                rules.append({**fresh, **{f: post[prefix + f] for f in EVENT_FIELDS
                                          if prefix + f in post}, "steps": steps})
            elif kind == "segment":
                rules.append(C.new_segment(post.get(prefix + "id", ""),
                                           post.get(prefix + "name", "")))
            ri += 1
        containers.append({"mode": post.get(f"c{ci}_mode", "include"),
                           "join": post.get(f"c{ci}_join", "and"), "rules": rules})
        ci += 1
    return {"containers": containers} if containers else C.empty()


def _index(value: str, items: list) -> int:
    """A container or rule index from an action; -1 (or anything unknown) means the last."""
    try:
        i = int(value)
    except ValueError:
        return len(items) - 1
    return i if 0 <= i < len(items) else len(items) - 1


def apply_action(canvas: dict, action: str, *, names: dict[str, str]) -> dict:
    """One canvas edit: add_attr:<ci>:<path>:<type>, add_event:<ci>:<type>,
    add_segment:<ci>:<id>, add_step:<ci>:<ri>, remove_step:<ci>:<ri>:<si>,
    remove_rule:<ci>:<ri>, add_container, remove_container:<ci>."""
    verb, _, rest = action.partition(":")
    args = rest.split(":") if rest else []
    containers = canvas["containers"]
    if verb == "add_container":
        containers.append({"mode": "include", "join": "and", "rules": []})
        return canvas
    if not containers:
        containers.append({"mode": "include", "join": "and", "rules": []})
    if not args:
        return canvas
    box = containers[_index(args[0], containers)]
    if verb == "add_attr" and len(args) >= 3:
        box["rules"].append(C.new_attr(args[1], args[2]))
    elif verb == "add_event" and len(args) >= 2:
        box["rules"].append(C.new_event(":".join(args[1:])))
    elif verb == "add_segment" and len(args) >= 2:
        box["rules"].append(C.new_segment(args[1], names.get(args[1], args[1])))
    elif verb == "remove_container":
        containers.remove(box)
    elif verb in ("remove_rule", "add_step", "remove_step") and len(args) >= 2 and box["rules"]:
        rule = box["rules"][_index(args[1], box["rules"])]
        if verb == "remove_rule":
            box["rules"].remove(rule)
        elif verb == "add_step" and rule["kind"] == "event":
            rule["steps"].append(C.new_step(rule["steps"][-1]["event_type"], first=False))
            rule["count_op"] = "at_least"
        elif verb == "remove_step" and rule["kind"] == "event" and len(rule["steps"]) > 1:
            rule["steps"].pop(_index(args[2] if len(args) > 2 else "-1", rule["steps"]))
    return canvas


# --- validation and the method list -------------------------------------------------------------


@dataclass(frozen=True)
class MethodChoice:
    key: str
    label: str
    eligible: bool
    allowed: bool
    reasons: list[str]
    suggestions: list[str]
    checked: bool


def _wanted(post) -> str:
    """The evaluation method the form asks for; anything unknown is batch."""
    method = post.get("method", "")
    return method if method in dict(METHODS) else "batch"


def _policy(value: str) -> MergePolicy | None:
    policy = MergePolicy.objects.filter(pk=value).first() if defs.is_uuid(value or "") else None
    return policy or MergePolicy.objects.filter(is_default=True).first()


def _methods(verdict, policy: MergePolicy | None, wanted: str) -> tuple[list[MethodChoice], str]:
    """Each method with whether it may be chosen and why; the wanted one falls back to batch
    when it is not allowed."""
    choices, allowed_keys = [], set()
    for key, label in METHODS:
        eligible = bool(verdict.eligible.get(key, key == "batch")) if verdict.query is not None \
            else key == "batch"
        reasons = list(verdict.reasons.get(key, [])) if verdict.query is not None else []
        allowed = eligible
        if key != "batch" and eligible and not (policy and policy.is_active_on_edge):
            allowed = False
            reasons.append(f"{label} needs the sandbox's active-on-edge merge policy; "
                           f"{policy.name if policy else 'this policy'!r} is not.")
        if allowed:
            allowed_keys.add(key)
        choices.append((key, label, eligible, allowed, reasons,
                        list(verdict.suggestions.get(key, [])) if verdict.query is not None
                        else []))
    chosen = wanted if wanted in allowed_keys else "batch"
    return [MethodChoice(k, lbl, e, a, r, s, k == chosen)
            for k, lbl, e, a, r, s in choices], chosen


def builder_state(*, post, definition: Definition | None, source: str) -> dict:
    """Everything the builder shows for the posted form."""
    names = {str(pk): name for pk, name in Definition.objects.values_list("pk", "name")}
    types = {path: C.field_type(t) for path, t in _attributes()}
    if source == "canvas" and post.get("canvas_locked") == "1":
        source = "code"  # the canvas cannot draw this PQL: never overwrite it from the canvas
    if source == "code":
        expression = post.get("expression", "")
        canvas = None
    else:
        canvas = apply_action(canvas_from_post(post), post.get("action", ""), names=names)
        expression = C.to_pql(canvas)
    policy = _policy(post.get("merge_policy", ""))
    verdict = None
    if expression.strip():
        verdict = defs.definition_validate(
            expression=expression, merge_policy=policy,
            requested={_wanted(post): True},
            definition_id=str(definition.pk) if definition else None)
        if canvas is None and verdict.query is not None:
            canvas = C.from_pql(verdict.query, types=types)
    elif canvas is None:
        canvas = C.empty()
    drawable = canvas is not None
    for box in (canvas or C.empty())["containers"]:
        for rule in box["rules"]:
            if rule["kind"] == "segment":
                rule["name"] = rule.get("name") or names.get(rule["id"], rule["id"])
            if rule["kind"] == "attr":
                rule["ops"] = C.OPERATORS.get(rule["type"], C.OPERATORS["string"])
    methods, chosen = _methods(verdict or defs.Verdict(), policy, _wanted(post))
    return {"expression": expression, "canvas": canvas or C.empty(), "drawable": drawable,
            "verdict": verdict, "methods": methods, "method": chosen, "policy": policy,
            "wanted": _wanted(post)}


def _initial_post(definition: Definition | None) -> dict:
    if definition is None:
        return {"expression": "", "method": "batch", "merge_policy": "", "name": "",
                "description": ""}
    return {"expression": definition.expression, "method": definition.update_frequency,
            "merge_policy": str(definition.merge_policy_id), "name": definition.name,
            "description": definition.description}


def _page(request, definition: Definition | None, post, *, status: int = 200,
          error: str = "") -> TemplateResponse:
    state = builder_state(post=post, definition=definition,
                          source="code" if definition or request.method == "POST" else "canvas")
    context = {
        "nav": "audiences", "definition": definition, "form": post, "error": error,
        "attribute_tree": _tree(_attributes()), "event_types": _event_types(),
        "audiences": _audiences(definition.pk if definition else None),
        "policies": MergePolicy.objects.order_by("-is_default", "name"),
        "C": CHOICES,
        **state,
    }
    return TemplateResponse(request, "audiences/portal/builder.html", context, status=status)


# --- views --------------------------------------------------------------------------------------


def _save(request, definition: Definition | None):
    post = request.POST
    intent = post.get("intent", "draft")
    policy = _policy(post.get("merge_policy", ""))
    requested = {_wanted(post): True}
    now = timezone.now()
    try:
        if definition is None:
            saved = defs.definition_create(
                name=post.get("name", ""), description=post.get("description", ""),
                expression=post.get("expression", ""), merge_policy=policy,
                requested=requested, created_in_builder=True, user=request.user, now=now,
                lifecycle_state=Definition.Lifecycle.PUBLISHED if intent == "publish"
                else Definition.Lifecycle.DRAFT)
        else:
            changes = {"name": post.get("name", ""), "description": post.get("description", ""),
                       "expression": post.get("expression", ""), "merge_policy": policy,
                       "requested": requested}
            if intent == "publish":
                changes["lifecycle_state"] = Definition.Lifecycle.PUBLISHED
            saved = defs.definition_update(definition=definition, changes=changes,
                                           user=request.user, now=now)
    except SiftError as exc:
        return _page(request, definition, post, status=400, error=exc.message)
    refused = (saved.eligibility or {}).get("refused") or {}
    if refused:
        messages.warning(request, "Saved as batch: " + " ".join(
            " ".join(reasons) for reasons in refused.values()))
    messages.success(request, f"Saved {saved.name} ({saved.get_lifecycle_state_display()}, "
                              f"{saved.update_frequency}).")
    return redirect("audiences:detail", definition_id=saved.pk)


@portal_view(role="write")
def builder_create(request):
    if request.method == "POST":
        return _save(request, None)
    return _page(request, None, _initial_post(None))


@portal_view(role="write")
def builder_edit(request, definition_id):
    definition = definition_or_404(definition_id)
    if request.method == "POST":
        return _save(request, definition)
    return _page(request, definition, _initial_post(definition))


@require_POST
@portal_view(role="write")
def builder_sync(request):
    """Live sync + validation: the canvas, PQL, feedback and methods as out-of-band swaps."""
    definition = None
    if defs.is_uuid(request.POST.get("definition_id", "")):
        definition = Definition.objects.filter(pk=request.POST["definition_id"]).first()
    source = request.POST.get("source", "canvas")
    state = builder_state(post=request.POST, definition=definition, source=source)
    context = {**state, "source": source, "form": request.POST, "definition": definition,
               "event_types": _event_types(), "C": CHOICES}
    return TemplateResponse(request, "audiences/portal/_builder_sync.html", context)


@require_POST
@portal_view(role="write")
def builder_estimate(request):
    """Refresh estimate: start a preview (estimate + sample) and poll it."""
    policy = _policy(request.POST.get("merge_policy", ""))
    try:
        preview = preview_create(expression=request.POST.get("expression", ""),
                                 merge_policy_id=str(policy.pk) if policy else None,
                                 user=request.user, now=timezone.now())
    except SiftError as exc:
        return TemplateResponse(request, "audiences/portal/_estimate.html",
                                {"error": exc.message})
    return TemplateResponse(request, "audiences/portal/_estimate.html", {"preview": preview})


@require_safe
@portal_view()
def builder_estimate_poll(request, preview_id):
    try:
        preview = preview_get(preview_id=preview_id, now=timezone.now())
    except SiftError as exc:
        return TemplateResponse(request, "audiences/portal/_estimate.html",
                                {"error": exc.message})
    page = max(int(request.GET["page"]), 1) if request.GET.get("page", "").isdigit() else 1
    size = 10
    results = preview.results[(page - 1) * size: page * size]
    return TemplateResponse(request, "audiences/portal/_estimate.html", {
        "preview": preview, "results": results, "page": page,
        "bounds": preview.estimate.get("sift:bounds", {}),
        "has_next": len(preview.results) > page * size,
        "done": preview.state in (Preview.State.RESULT_READY, Preview.State.FAILED)})
