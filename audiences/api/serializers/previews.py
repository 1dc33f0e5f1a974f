"""`/preview` and `/estimate`: Adobe's asynchronous sample and size estimate."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from rest_framework import serializers

from audiences.models import Preview

ACCESS = "/data/core/ups/access/entities"


class PreviewInput(serializers.Serializer):
    predicateExpression = serializers.CharField(max_length=100_000)
    predicateType = serializers.ChoiceField(choices=["pql/text", "pql/json"], default="pql/text")
    predicateModel = serializers.CharField(max_length=64, default="_xdm.context.profile")
    graphType = serializers.ChoiceField(choices=["none", "pdg"], required=False)
    mergePolicyId = serializers.CharField(max_length=64, required=False, allow_blank=True,
                                          help_text="Sift extension: evaluate under this policy")


class PreviewCreatedOutput(serializers.Serializer):
    state = serializers.CharField()
    previewQueryId = serializers.CharField()
    previewQueryStatus = serializers.CharField()
    previewId = serializers.CharField()
    previewExecutionId = serializers.IntegerField()


class PreviewOutput(serializers.Serializer):
    results = serializers.ListField(child=serializers.DictField())
    state = serializers.ChoiceField(choices=Preview.State.values)
    page = serializers.DictField()
    links = serializers.DictField()


class EstimateOutput(serializers.Serializer):
    estimatedSize = serializers.IntegerField()
    numRowsToRead = serializers.IntegerField()
    totalRows = serializers.IntegerField()
    profilesReadSoFar = serializers.IntegerField()
    profilesMatchedSoFar = serializers.IntegerField()
    standardError = serializers.FloatField()
    confidenceInterval = serializers.CharField()
    estimatedNamespaceDistribution = serializers.ListField(child=serializers.DictField())
    state = serializers.ChoiceField(choices=Preview.State.values)
    error = serializers.DictField(required=False)
    _links = serializers.DictField()


EstimateOutput._declared_fields["sift:bounds"] = serializers.DictField(
    help_text="95 % interval of the estimate: lower, upper, method (exact or wilson-fpc)")


def preview_created(preview: Preview) -> dict[str, Any]:
    return {"state": preview.state, "previewQueryId": str(preview.pk),
            "previewQueryStatus": preview.state, "previewId": str(preview.pk),
            "previewExecutionId": 0}


def _href(namespace: str, value: str, merge_policy_id: Any) -> str:
    query = {"schema.name": "_xdm.context.profile", "entityId": value, "entityIdNS": namespace}
    if merge_policy_id:
        query["mergePolicyId"] = str(merge_policy_id)
    return f"{ACCESS}?{urlencode(query)}"


def preview_result(entry: dict, merge_policy_id: Any) -> dict[str, Any]:
    """One matching profile: keyed by its primary identity, with every identity it carries."""
    others = {}
    for namespace, ids in (entry.get("identityMap") or {}).items():
        for item in ids or []:
            value = item.get("id") if isinstance(item, dict) else None
            if value and value != entry.get("id"):
                others[value] = {"namespace": namespace,
                                 "_href": _href(namespace, value, merge_policy_id)}
    return {entry.get("id") or str(entry.get("profileId")): {
        "namespace": entry.get("namespace", ""),
        "_href": _href(entry.get("namespace", ""), entry.get("id", ""), merge_policy_id),
        "identityMap": entry.get("identityMap") or {},
        "endCustomerIds": others,
    }}


def preview_page(preview: Preview, *, offset: int, limit: int, path: str) -> dict[str, Any]:
    ready = preview.state == Preview.State.RESULT_READY
    rows = (preview.results or [])[offset:offset + limit] if ready else []
    total = len(preview.results or []) if ready else 0
    links = {"_self": f"{path}?offset={offset}&limit={limit}"}
    if offset + limit < total:
        links["next"] = f"{path}?offset={offset + limit}&limit={limit}"
    if offset > 0:
        links["prev"] = f"{path}?offset={max(offset - limit, 0)}&limit={limit}"
    return {"results": [preview_result(r, preview.merge_policy_id) for r in rows],
            "state": preview.state, "page": {"offset": offset, "size": len(rows)},
            "links": links}


def estimate_out(preview: Preview) -> dict[str, Any]:
    estimate = dict(preview.estimate or {})
    out = {
        "estimatedSize": estimate.get("estimatedSize", 0),
        "numRowsToRead": estimate.get("numRowsToRead", 0),
        "totalRows": estimate.get("totalRows", 0),
        "profilesReadSoFar": estimate.get("profilesReadSoFar", 0),
        "profilesMatchedSoFar": estimate.get("profilesMatchedSoFar", 0),
        "standardError": estimate.get("standardError", 0.0),
        "confidenceInterval": "95%",
        "estimatedNamespaceDistribution": estimate.get("estimatedNamespaceDistribution", []),
        "state": preview.state,
        "_links": {"preview": f"/data/core/ups/preview/{preview.pk}"},
        "sift:bounds": estimate.get("sift:bounds", {}),
    }
    if preview.state == Preview.State.FAILED:
        out["error"] = {"description": preview.error, "traceback": ""}
    return out
