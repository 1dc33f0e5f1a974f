"""`/data/core/ups/config/mergePolicies`: list (paged), get, bulk-get, create, PUT, PATCH (one
JSON-Patch object or a list of them, with AEP's dotted paths), delete. Writes are for admins.

Extensions to Adobe's object, in Adobe's naming style: `eventDatasets` (the event datasets whose
events count; empty means all) and `rebuild` (`{state, progress}` of the profile rebuild a
policy change starts).
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.api.common import (
    BulkGetInput,
    bool_param,
    bulk_results,
    clean_param,
    epoch_s,
    next_href,
    no_nul,
    paginate,
)
from audiences.models import PROFILE_CLASS, MergePolicy
from audiences.services import merge_policies as service
from audiences.services.definitions import is_uuid
from portal.errors import ErrorCode, SiftError
from portal.permissions import AdminWritePermission

PATH = "/data/core/ups/config/mergePolicies"
TAG = ["Merge policies"]
ERRORS = {400: OpenApiResponse(description="Invalid request; the body names the field"),
          403: OpenApiResponse(description="Only administrators may write"),
          404: OpenApiResponse(description="Not found in this organization and sandbox"),
          409: OpenApiResponse(description="A rule forbids it (default, active on edge, in use)"),
          422: OpenApiResponse(description="Name taken, or the policy limit is reached")}
PATCH_PATHS = {
    "/name": "name", "/identityGraph.type": "identity_graph",
    "/identityGraph/type": "identity_graph", "/attributeMerge.type": "attribute_merge",
    "/attributeMerge/type": "attribute_merge", "/attributeMerge.order": "dataset_order",
    "/attributeMerge/order": "dataset_order", "/eventDatasets": "event_datasets",
    "/default": "is_default", "/isActiveOnEdge": "is_active_on_edge",
    "/schema.name": "schema_name", "/schema/name": "schema_name", "/version": "version",
}


def merge_policy_aep(policy: MergePolicy) -> dict[str, Any]:
    attribute_merge: dict[str, Any] = {"type": policy.attribute_merge}
    if policy.attribute_merge == MergePolicy.AttributeMerge.DATASET_PRECEDENCE:
        attribute_merge["order"] = list(policy.dataset_order or [])
    return {
        "id": str(policy.pk),
        "name": policy.name,
        "imsOrgId": policy.sandbox.organization.ims_org_id,
        "sandbox": policy.sandbox.to_aep(),
        "schema": {"name": policy.schema_name},
        "version": policy.version,
        "identityGraph": {"type": policy.identity_graph},
        "attributeMerge": attribute_merge,
        "eventDatasets": list(policy.event_datasets or []),
        "isActiveOnEdge": policy.is_active_on_edge,
        "default": policy.is_default,
        "updateEpoch": epoch_s(policy.updated_at),
        "rebuild": {"state": policy.rebuild_state, "progress": policy.rebuild_progress or {}},
    }


def _bool(value: Any, field: str) -> bool:
    """Adobe's examples send booleans as strings ("true"); accept both."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise SiftError(ErrorCode.INVALID, f"{field} must be true or false.", {"field": field})


def _schema(value: Any) -> None:
    if value not in (None, PROFILE_CLASS):
        raise SiftError(ErrorCode.INVALID, f"schema.name must be {PROFILE_CLASS}.",
                        {"field": "schema.name"})


class TypeSerializer(serializers.Serializer):
    type = serializers.CharField(max_length=40)


class AttributeMergeSerializer(serializers.Serializer):
    type = serializers.CharField(max_length=40)
    order = serializers.ListField(child=serializers.CharField(max_length=64), required=False)


class SchemaNameSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)


class MergePolicyInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    identityGraph = TypeSerializer(required=False)
    attributeMerge = AttributeMergeSerializer(required=False)
    schema = SchemaNameSerializer(required=False)
    eventDatasets = serializers.ListField(child=serializers.CharField(max_length=64),
                                         required=False)
    isActiveOnEdge = serializers.JSONField(required=False)
    default = serializers.JSONField(required=False)

    def fields_for_service(self) -> dict[str, Any]:
        data = self.validated_data
        _schema((data.get("schema") or {}).get("name"))
        merge = data.get("attributeMerge") or {}
        return {
            "name": data["name"],
            "identity_graph": (data.get("identityGraph") or {}).get("type", "pdg"),
            "attribute_merge": merge.get("type", "timestampOrdered"),
            "dataset_order": merge.get("order") or [],
            "event_datasets": data.get("eventDatasets") or [],
            "is_default": _bool(data.get("default", False), "default"),
            "is_active_on_edge": _bool(data.get("isActiveOnEdge", False), "isActiveOnEdge"),
        }


class MergePolicyOutput(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    imsOrgId = serializers.CharField()
    sandbox = serializers.DictField()
    schema = SchemaNameSerializer()
    version = serializers.IntegerField()
    identityGraph = TypeSerializer()
    attributeMerge = AttributeMergeSerializer()
    eventDatasets = serializers.ListField(child=serializers.CharField())
    isActiveOnEdge = serializers.BooleanField()
    default = serializers.BooleanField()
    updateEpoch = serializers.IntegerField()
    rebuild = serializers.DictField()


def _policy(merge_policy_id: str) -> MergePolicy:
    policy = (MergePolicy.objects.select_related("sandbox__organization")
              .filter(pk=merge_policy_id).first() if is_uuid(merge_policy_id) else None)
    if policy is None:
        raise SiftError(ErrorCode.NOT_FOUND, f"Merge policy {merge_policy_id[:64]!r} does not "
                                             "exist in this sandbox.")
    return policy


def _fresh(policy: MergePolicy) -> dict[str, Any]:
    return merge_policy_aep(MergePolicy.objects.select_related("sandbox__organization")
                            .get(pk=policy.pk))


LIST_PARAMETERS = [
    OpenApiParameter("limit", int, description="Page size (default 20, at most 100)"),
    OpenApiParameter("start", int, description="Offset of the first policy"),
    OpenApiParameter("orderBy", str, description="name, +name or -name"),
    OpenApiParameter("default", bool), OpenApiParameter("isActiveOnEdge", bool),
    OpenApiParameter("schema.name", str), OpenApiParameter("identityGraph.type", str),
    OpenApiParameter("attributeMerge.type", str),
]


class MergePolicyListApi(APIView):
    permission_classes = [AdminWritePermission]

    @extend_schema(tags=TAG, summary="List merge policies", parameters=LIST_PARAMETERS,
                   responses={200: OpenApiTypes.OBJECT, **ERRORS})
    def get(self, request):
        params = request.query_params
        policies = service.merge_policy_list().select_related("sandbox__organization")
        for param, field in (("default", "is_default"), ("isActiveOnEdge", "is_active_on_edge")):
            value = bool_param(params, param)
            if value is not None:
                policies = policies.filter(**{field: value})
        for param, field in (("schema.name", "schema_name"),
                             ("identityGraph.type", "identity_graph"),
                             ("attributeMerge.type", "attribute_merge")):
            value = clean_param(params, param)
            if value:
                policies = policies.filter(**{field: value})
        order = clean_param(params, "orderBy") or "name"
        orderings = {"name": ("name", "pk"), "+name": ("name", "pk"), "-name": ("-name", "-pk")}
        if order not in orderings:
            raise SiftError(ErrorCode.INVALID, "orderBy must be name, +name or -name.",
                            {"parameter": "orderBy"})
        page = paginate(policies.order_by(*orderings[order]), params, default_limit=20)
        href = next_href("@/mergePolicies", params, page)
        return Response({"_page": {"totalCount": page.total, "pageSize": len(page.items)},
                         "children": [merge_policy_aep(p) for p in page.items],
                         "_links": {"next": {"href": href}}})

    @extend_schema(tags=TAG, summary="Create a merge policy (its profiles are rebuilt)",
                   request=MergePolicyInput, responses={200: MergePolicyOutput, **ERRORS})
    def post(self, request):
        body = MergePolicyInput(data=request.data)
        body.is_valid(raise_exception=True)
        policy = service.merge_policy_create(**body.fields_for_service(), now=timezone.now(),
                                             user=request.user)
        return Response(_fresh(policy))


class MergePolicyDetailApi(APIView):
    permission_classes = [AdminWritePermission]

    @extend_schema(tags=TAG, summary="Get a merge policy",
                   responses={200: MergePolicyOutput, **ERRORS})
    def get(self, request, merge_policy_id: str):
        return Response(merge_policy_aep(_policy(merge_policy_id)))

    @extend_schema(tags=TAG, summary="Replace a merge policy", request=MergePolicyInput,
                   responses={200: MergePolicyOutput, **ERRORS})
    def put(self, request, merge_policy_id: str):
        policy = _policy(merge_policy_id)
        body = MergePolicyInput(data=request.data)
        body.is_valid(raise_exception=True)
        changes = body.fields_for_service()
        if not changes["is_default"] and not policy.is_default:
            changes.pop("is_default")
        service.merge_policy_update(merge_policy=policy, changes=changes, now=timezone.now())
        return Response(_fresh(policy))

    @extend_schema(tags=TAG, summary="Change fields of a merge policy: one JSON-Patch object "
                                     '({"op":"add","path":"/default","value":"true"}) or a list',
                   request=OpenApiTypes.OBJECT, responses={200: MergePolicyOutput, **ERRORS})
    def patch(self, request, merge_policy_id: str):
        policy = _policy(merge_policy_id)
        operations = no_nul(request.data if isinstance(request.data, list) else [request.data],
                            "body")
        changes: dict[str, Any] = {}
        for position, operation in enumerate(operations):
            if not isinstance(operation, dict) or operation.get("op") not in ("add", "replace"):
                raise SiftError(ErrorCode.INVALID, f"Operation {position} must be "
                                                   '{"op": "add"|"replace", "path", "value"}.',
                                {"operation": position})
            field = PATCH_PATHS.get(str(operation.get("path")))
            if field is None:
                raise SiftError(ErrorCode.INVALID, f"Operation {position}: path must be one of "
                                                   f"{', '.join(sorted(PATCH_PATHS))}.",
                                {"operation": position})
            value = operation.get("value")
            if field in ("is_default", "is_active_on_edge"):
                value = _bool(value, str(operation["path"]))
            elif field == "schema_name":
                _schema(value)
                continue
            elif field == "version":
                continue  # read-only: every change bumps it
            elif field in ("dataset_order", "event_datasets") and not isinstance(value, list):
                raise SiftError(ErrorCode.INVALID, f"{operation['path']} must be a list of "
                                                   "dataset ids.", {"operation": position})
            elif field in ("name", "identity_graph", "attribute_merge") and not isinstance(
                    value, str):
                raise SiftError(ErrorCode.INVALID, f"{operation['path']} must be a string.",
                                {"operation": position})
            changes[field] = value
        service.merge_policy_update(merge_policy=policy, changes=changes, now=timezone.now())
        return Response(_fresh(policy))

    @extend_schema(tags=TAG, summary="Delete a merge policy (200, empty body)",
                   responses={200: OpenApiResponse(description="Deleted"), **ERRORS})
    def delete(self, request, merge_policy_id: str):
        service.merge_policy_delete(merge_policy=_policy(merge_policy_id))
        return Response(status=200)


class MergePolicyBulkGetApi(APIView):
    permission_classes = [AdminWritePermission]

    @extend_schema(tags=TAG, summary="Get several merge policies", request=BulkGetInput,
                   responses={207: OpenApiTypes.OBJECT, **ERRORS})
    def post(self, request):
        body = BulkGetInput(data=request.data)
        body.is_valid(raise_exception=True)
        ids = [item["id"] for item in body.validated_data["ids"]]
        found = {str(p.pk): p for p in MergePolicy.objects.select_related(
            "sandbox__organization").filter(pk__in=[i for i in ids if is_uuid(i)])}
        payload = bulk_results(ids=ids, found={i: found[i] for i in ids if i in found},
                               render=merge_policy_aep, kind="merge policy",
                               request_id=request.headers.get("x-request-id", ""))
        return Response(payload, status=207)
