"""Audience details: summary, "Profiles over time", members sample, job runs, history,
dependencies and dependents."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.views.decorators.http import require_safe

from audiences.models import (
    QUALIFIED,
    DefinitionHistory,
    Membership,
    MetricBucket,
    SegmentDefinition,
    SegmentJobRun,
)
from audiences.services import definitions as defs
from audiences.services.metrics import metrics_series
from audiences.web.audiences import definition_or_404
from audiences.web.charts import profiles_over_time
from portal.web import portal_view, render_page_or_partial

Definition = SegmentDefinition
# range key -> (label, span, bucket granularity)
RANGES = {
    "24h": ("Last 24 hours", timedelta(hours=24), MetricBucket.Granularity.HOUR),
    "week": ("Last week", timedelta(days=7), MetricBucket.Granularity.HOUR),
    "30d": ("Last 30 days", timedelta(days=30), MetricBucket.Granularity.DAY),
}
SAMPLE_SIZE = 10


def _chart(definition: Definition, key: str) -> dict:
    key = key if key in RANGES else "week"
    label, span, granularity = RANGES[key]
    now = timezone.now()
    series = metrics_series(definition=definition, granularity=granularity, start=now - span,
                            end=now)
    return {"range": key, "range_label": label, "ranges": RANGES,
            "chart": profiles_over_time(series, hourly=granularity == "hour"),
            "has_data": any(series.total) or any(series.realized)}


def _profile_link(namespace: str, value: str) -> str:
    """The profile look-up page for one identity, when that page exists."""
    try:
        base = reverse("audiences:profiles")
    except NoReverseMatch:
        return ""
    return f"{base}?{urlencode({'namespace': namespace, 'identity': value})}"


def _person(profile) -> dict:
    attrs = profile.attributes or {}
    name = (attrs.get("person") or {}).get("name") or {}
    emails = (profile.identity_map or {}).get("Email") or [{}]
    email = (attrs.get("personalEmail") or {}).get("address") or emails[0].get("id", "")
    return {"identity": f"{profile.primary_namespace}: {profile.primary_id}",
            "name": " ".join(p for p in (name.get("firstName"), name.get("lastName")) if p),
            "email": email,
            "url": _profile_link(profile.primary_namespace, profile.primary_id)}


def _evaluation(definition: Definition) -> dict:
    """How it is evaluated and why, from the stored verdict (not re-judged on view)."""
    eligibility = definition.eligibility or {}
    reasons = eligibility.get("reasons") or {}
    refused = eligibility.get("refused") or {}
    methods = []
    for key, label in Definition.Method.choices:
        in_force = key in definition.methods
        methods.append({"key": key, "label": label, "in_force": in_force,
                        "eligible": bool(eligibility.get(key, key == "batch")),
                        "reasons": (refused.get(key) or []) + (reasons.get(key) or [])})
    return {"methods": methods, "query_type": eligibility.get("queryType", ""),
            "ruleset": definition.eligibility_ruleset}


@require_safe
@portal_view()
def detail(request, definition_id):
    definition = definition_or_404(definition_id)
    chart = _chart(definition, request.GET.get("range", "week"))
    if request.htmx:
        return render_page_or_partial(request, "audiences/portal/detail.html",
                                      "audiences/portal/_chart.html",
                                      {"definition": definition, **chart})
    members = (Membership.objects.filter(definition=definition, status__in=QUALIFIED)
               .select_related("profile").order_by("-last_qualification_time")[:SAMPLE_SIZE])
    runs = list(SegmentJobRun.objects.filter(definition=definition).select_related("job")
                .order_by("-id")[:10])
    context = {
        "nav": "audiences", "definition": definition, **chart,
        "evaluation": _evaluation(definition),
        "sample": [{**_person(m.profile), "status": m.status,
                    "since": m.last_qualification_time} for m in members],
        "runs": runs, "last_run": runs[0] if runs else None,
        "history": DefinitionHistory.objects.filter(definition_uuid=definition.pk)
        .select_related("user")[:20],
        "dependencies": definition.dependencies.order_by("name"),
        "dependents": definition.dependents.order_by("name"),
        "tags": definition.tags.all(),
        "delete_blockers": defs.definition_delete_blockers(definition),
    }
    return render_page_or_partial(request, "audiences/portal/detail.html",
                                  "audiences/portal/_chart.html", context)
