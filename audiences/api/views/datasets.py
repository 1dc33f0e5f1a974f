"""Catalog datasets (`/data/foundation/catalog/dataSets`) and streaming connections
(`/data/foundation/flowservice/connections`), in Adobe's shapes. Writes are for admins.

Catalog answers are bare objects keyed by id (no paging envelope), create answers
`201 ["@/dataSets/{id}"]`, as the Catalog Service does.
"""

from __future__ import annotations

import fnmatch
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.api.common import clean_param, epoch_ms, int_param, no_nul
from audiences.models import Dataset, StreamingConnection
from audiences.services import datasets as service
from portal.errors import ErrorCode, SiftError
from portal.permissions import AdminWritePermission

CATALOG_TAG = ["Catalog datasets"]
FLOW_TAG = ["Streaming connections"]
HTTP_API_SPEC = "bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb"  # connectionSpec of the HTTP API source
MAX_CATALOG_LIMIT = 100
ERRORS = {400: OpenApiResponse(description="Invalid request; the body names the field"),
          403: OpenApiResponse(description="Only administrators may write"),
          404: OpenApiResponse(description="Not found in this organization and sandbox")}


def collection_url(request, inlet_id: str) -> str:
    base = getattr(settings, "SIFT_COLLECTION_BASE_URL", "") or request.build_absolute_uri("/")
    return base.rstrip("/") + f"/collection/{inlet_id}"


def dataset_aep(dataset: Dataset) -> dict[str, Any]:
    schema_path = "@/xdms/context/" + ("profile" if dataset.is_profile else "experienceevent")
    return {
        "name": dataset.name,
        "description": dataset.description,
        "imsOrg": dataset.sandbox.organization.ims_org_id,
        "sandboxId": str(dataset.sandbox.pk),
        "tags": dataset.tags or {},
        "version": "1.0.0",
        "created": epoch_ms(dataset.created_at),
        "updated": epoch_ms(dataset.updated_at),
        "createdUser": dataset.created_by.username if dataset.created_by else "",
        "files": f"@/dataSetFiles?dataSetId={dataset.pk}",
        "schema": schema_path,
        "schemaRef": dataset.schema_ref or {},
        "classId": dataset.class_name,
        "state": "ENABLED" if dataset.profile_enabled else "DRAFT",
    }


def _select(obj: dict, properties: str | None) -> dict:
    """`properties=a,b`: top-level fields only; missing ones are left out."""
    if not properties:
        return obj
    wanted = {p.strip() for p in properties.split(",") if p.strip()}
    return {k: v for k, v in obj.items() if k in wanted}


def _from_ms(value: int) -> datetime:
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise SiftError(ErrorCode.INVALID, "createdAfter/createdBefore must be epoch ms.",
                        {"parameter": "createdAfter"}) from None


def _tag_filters(raw: str) -> list[tuple[str, str]]:
    """`tags=name:value,name2:*` (ANDed; `*` is a wildcard in values)."""
    filters = []
    for part in raw.split(","):
        name, sep, value = part.strip().partition(":")
        if not name or not sep:
            raise SiftError(ErrorCode.INVALID, "tags must be name:value pairs separated by "
                                               "commas.", {"parameter": "tags"})
        filters.append((name, value))
    return filters


def _tag_matches(tags: dict, name: str, pattern: str) -> bool:
    values = tags.get(name)
    if values is None:
        return False
    return any(fnmatch.fnmatchcase(str(v), pattern) for v in values)


class DatasetInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    schemaRef = serializers.DictField()
    tags = serializers.DictField(child=serializers.ListField(child=serializers.CharField(
        max_length=200)), required=False)
    fileDescription = serializers.DictField(required=False)

    def validate(self, attrs):
        no_nul(attrs, "body")
        return attrs


class DatasetListApi(APIView):
    permission_classes = [AdminWritePermission]

    @extend_schema(tags=CATALOG_TAG, summary="List datasets (an object keyed by id)",
                   parameters=[
                       OpenApiParameter("limit", int, description="1-100, default 20"),
                       OpenApiParameter("start", int, description="0-based offset"),
                       OpenApiParameter("properties", str,
                                        description="Comma-separated top-level fields"),
                       OpenApiParameter("orderBy", str, description="name, -name, created, "
                                                                    "-created"),
                       OpenApiParameter("tags", str, description="name:value[,name2:*] (AND)"),
                       OpenApiParameter("createdAfter", int, description="epoch ms"),
                       OpenApiParameter("createdBefore", int, description="epoch ms")],
                   responses={200: OpenApiTypes.OBJECT, **ERRORS})
    def get(self, request):
        params = request.query_params
        limit = int_param(params, "limit", default=20, minimum=1)
        if limit > MAX_CATALOG_LIMIT:
            raise SiftError(ErrorCode.INVALID, f"limit must be between 1 and "
                                               f"{MAX_CATALOG_LIMIT}.", {"parameter": "limit"})
        start = int_param(params, "start", default=0)
        order = {"name": ("name", "pk"), "-name": ("-name", "pk"),
                 "created": ("created_at", "pk"), "-created": ("-created_at", "pk")}
        order_by = clean_param(params, "orderBy") or "name"
        if order_by not in order:
            raise SiftError(ErrorCode.INVALID, "orderBy must be one of "
                                               f"{', '.join(order)}.", {"parameter": "orderBy"})
        datasets = service.dataset_list().select_related("sandbox__organization", "created_by")
        after, before = (int_param(params, name, default=0) for name in ("createdAfter",
                                                                          "createdBefore"))
        if after:
            datasets = datasets.filter(created_at__gt=_from_ms(after))
        if before:
            datasets = datasets.filter(created_at__lt=_from_ms(before))
        tags = clean_param(params, "tags")
        if tags:
            # A sandbox holds few datasets: matching tags in Python keeps one behaviour on
            # both databases (their JSON operators differ).
            wanted = _tag_filters(tags)
            datasets = [d for d in datasets.order_by(*order[order_by])
                        if all(_tag_matches(d.tags or {}, n, v) for n, v in wanted)]
        else:
            datasets = datasets.order_by(*order[order_by])
        datasets = datasets[start:start + limit]
        properties = clean_param(params, "properties")
        return Response({d.pk: _select(dataset_aep(d), properties) for d in datasets})

    @extend_schema(tags=CATALOG_TAG, summary="Create a dataset", request=DatasetInput,
                   responses={201: OpenApiTypes.OBJECT, **ERRORS})
    def post(self, request):
        body = DatasetInput(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        dataset = service.dataset_create(name=data["name"], schema_ref=data["schemaRef"],
                                         description=data.get("description", ""),
                                         tags=data.get("tags"), user=request.user)
        return Response([f"@/dataSets/{dataset.pk}"], status=201)


class DatasetDetailApi(APIView):
    permission_classes = [AdminWritePermission]

    @extend_schema(tags=CATALOG_TAG, summary="Get a dataset (an object keyed by its id)",
                   parameters=[OpenApiParameter("properties", str)],
                   responses={200: OpenApiTypes.OBJECT, **ERRORS})
    def get(self, request, dataset_id: str):
        dataset = service.dataset_get(dataset_id=dataset_id)
        return Response({dataset.pk: _select(dataset_aep(dataset),
                                             clean_param(request.query_params, "properties"))})

    @extend_schema(tags=CATALOG_TAG, summary="Enable a dataset for Profile/Identity "
                                             "(JSON Patch `add /tags/<name>`)",
                   request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT, **ERRORS})
    def patch(self, request, dataset_id: str):
        dataset = service.dataset_get(dataset_id=dataset_id)
        operations = no_nul(request.data if isinstance(request.data, list) else [request.data],
                            "body")
        tags: dict = {}
        for position, operation in enumerate(operations):
            path = operation.get("path", "") if isinstance(operation, dict) else ""
            if (not isinstance(operation, dict) or operation.get("op") not in ("add", "replace")
                    or not isinstance(path, str) or not path.startswith("/tags/")):
                raise SiftError(ErrorCode.INVALID, f"Operation {position}: only add/replace of "
                                                   "/tags/<name> is supported.",
                                {"operation": position})
            tags[path.removeprefix("/tags/")] = operation.get("value")
        service.dataset_tags_update(dataset=dataset, tags=tags)
        return Response([f"@/dataSets/{dataset.pk}"])


# --- Streaming connections (Flow Service shape) ---------------------------------------------


def connection_aep(request, connection: StreamingConnection) -> dict[str, Any]:
    sandbox = connection.sandbox
    return {
        "id": str(connection.pk),
        "createdAt": epoch_ms(connection.created_at),
        "updatedAt": epoch_ms(connection.created_at),
        "createdBy": connection.created_by.username if connection.created_by else "",
        "sandboxId": str(sandbox.pk), "sandboxName": sandbox.name,
        "imsOrgId": sandbox.organization.ims_org_id,
        "name": connection.name, "description": connection.description,
        "connectionSpec": {"id": HTTP_API_SPEC, "version": "1.0"},
        "state": "enabled",
        "auth": {"specName": "Streaming Connection", "params": {
            "sourceId": connection.source_name or connection.name,
            "inletId": connection.inlet_id,
            "inletUrl": collection_url(request, connection.inlet_id),
            "authenticationRequired": connection.authentication_required,
            "dataType": "xdm", "name": connection.name}},
        "version": "1", "etag": f'"{connection.pk}"',
    }


class ConnectionParams(serializers.Serializer):
    name = serializers.CharField(required=False, max_length=200)
    sourceId = serializers.CharField(required=False, allow_blank=True, max_length=200)
    dataType = serializers.ChoiceField(choices=["xdm"], required=False)
    authenticationRequired = serializers.BooleanField(required=False, default=False)


class ConnectionAuth(serializers.Serializer):
    specName = serializers.CharField(required=False, max_length=200)
    params = ConnectionParams()


class ConnectionInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    connectionSpec = serializers.DictField(required=False)
    auth = ConnectionAuth(required=False)

    def validate(self, attrs):
        no_nul(attrs, "body")
        return attrs


class ConnectionListApi(APIView):
    permission_classes = [AdminWritePermission]

    @extend_schema(tags=FLOW_TAG, summary="List streaming connections",
                   responses={200: OpenApiTypes.OBJECT, **ERRORS})
    def get(self, request):
        connections = service.streaming_connection_list().select_related(
            "sandbox__organization", "created_by")[:MAX_CATALOG_LIMIT]
        return Response({"items": [connection_aep(request, c) for c in connections]})

    @extend_schema(tags=FLOW_TAG, summary="Create a streaming connection (an HTTP API inlet)",
                   request=ConnectionInput, responses={201: OpenApiTypes.OBJECT, **ERRORS})
    def post(self, request):
        body = ConnectionInput(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        params = (data.get("auth") or {}).get("params") or {}
        connection = service.streaming_connection_create(
            name=data["name"], description=data.get("description", ""),
            authentication_required=params.get("authenticationRequired", False),
            source_name=params.get("sourceId") or "", user=request.user)
        return Response({"id": str(connection.pk), "etag": f'"{connection.pk}"'}, status=201)


class ConnectionDetailApi(APIView):
    permission_classes = [AdminWritePermission]

    @extend_schema(tags=FLOW_TAG, summary="Get a streaming connection",
                   responses={200: OpenApiTypes.OBJECT, **ERRORS})
    def get(self, request, connection_id: str):
        connection = service.streaming_connection_get(connection_id=connection_id)
        return Response({"items": [connection_aep(request, connection)]})
