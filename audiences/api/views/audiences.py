"""`/data/core/ups/audiences`: list, create, get, PUT, PATCH (JSON Patch), delete, bulk-get."""

from __future__ import annotations

import copy
import uuid

import jsonpatch
from django.db.models import Prefetch
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.api.common import (
    BulkGetInput,
    bulk_results,
    clean_param,
    next_href,
    paginate,
    sort_param,
)
from audiences.api.serializers.audiences import (
    EXTERNAL_META_KEYS,
    PLATFORM,
    AudienceInput,
    AudienceListOutput,
    AudienceOutput,
    PatchOperation,
    audience_aep,
)
from audiences.api.serializers.definitions import BulkResultsOutput, requested_methods
from audiences.models import SegmentDefinition
from audiences.services import definitions as service
from portal.errors import ErrorCode, SiftError

PATH = "/data/core/ups/audiences"
TAG = ["Audiences"]
SORT_FIELDS = {"name": "name", "creationTime": "created_at", "createEpoch": "created_at",
               "updateTime": "updated_at", "updateEpoch": "updated_at", "id": "pk",
               "lifecycleState": "lifecycle_state"}
PROPERTIES = {"audienceId": "audience_id", "id": "pk", "name": "name",
              "namespace": "namespace", "lifecycleState": "lifecycle_state",
              "type": "audience_type", "originName": "origin"}
ERRORS = {400: OpenApiResponse(description="Invalid request, or it has dependents"),
          403: OpenApiResponse(description="Viewers may not write"),
          404: OpenApiResponse(description="Not found in this organization and sandbox")}
LIST_PARAMETERS = [
    OpenApiParameter("start", int, description="Offset of the first audience"),
    OpenApiParameter("limit", int, description="Page size (at most 100; larger is clamped)"),
    OpenApiParameter("sort", str, description="attribute:asc|desc; attributes: "
                                              + ", ".join(SORT_FIELDS)),
    OpenApiParameter("name", str, description="Name contains (case-insensitive)"),
    OpenApiParameter("description", str, description="Description contains (case-insensitive)"),
    OpenApiParameter("property", str, many=True,
                     description="attribute==value (exact); attributes: "
                                 + ", ".join(PROPERTIES)),
]


def _audiences():
    only_pk = SegmentDefinition.objects.only("pk")
    return (SegmentDefinition.objects.select_related("sandbox__organization", "created_by",
                                                     "updated_by")
            .prefetch_related(Prefetch("dependents", queryset=only_pk),
                              Prefetch("dependencies", queryset=only_pk)))


def _audience(audience_id: str) -> SegmentDefinition:
    definition = (_audiences().filter(pk=audience_id).first()
                  if service.is_uuid(audience_id) else None)
    if definition is None:
        raise SiftError(ErrorCode.NOT_FOUND, f"The audience entity {audience_id} is not found. "
                                             "Use a valid entity and try again.")
    return definition


def _property_filters(params) -> dict:
    filters = {}
    for raw in params.getlist("property"):
        if "\x00" in raw:
            raise SiftError(ErrorCode.INVALID, "property contains a NUL character.")
        name, sep, value = raw.partition("==")
        if not sep or name not in PROPERTIES:
            raise SiftError(ErrorCode.INVALID,
                            f"property must be attribute==value with attribute one of "
                            f"{', '.join(PROPERTIES)}; got {raw!r}.", {"parameter": "property"})
        field = PROPERTIES[name]
        if field == "pk" and not service.is_uuid(value):
            filters["pk__in"] = []
            continue
        filters[field] = value
    return filters


def _merge_policy(value):
    return service.merge_policy_get(merge_policy_id=value) if value else None


def _changes(data: dict, *, replace: bool, definition: SegmentDefinition) -> dict:
    """Validated audience fields -> `definition_update` changes. With `replace` (PUT), the
    optional descriptive fields it leaves out are cleared; methods, merge policy and lifecycle
    keep their values unless given."""
    changes: dict = {}
    if "type" in data and data["type"] != definition.audience_type and not (
            data["type"] in ("ExternalSegment", "ExternalAudience")
            and definition.audience_type == "ExternalSegment"):
        raise SiftError(ErrorCode.IMMUTABLE_FIELD, "type is immutable field.", {"field": "type"})
    for key, field in (("name", "name"), ("description", "description"),
                       ("labels", "labels"), ("ttlInDays", "ttl_in_days"),
                       ("lifecycleState", "lifecycle_state"), ("audienceId", "audience_id"),
                       ("namespace", "namespace")):
        if key in data:
            changes[field] = data[key]
        elif replace and key in ("description", "labels"):
            changes[field] = "" if key == "description" else []
    if "expression" in data:
        changes["expression"] = data["expression"]["value"]
        changes["expression_format"] = data["expression"]["format"]
    if "evaluationInfo" in data:
        changes["requested"] = requested_methods(data["evaluationInfo"])
    if "mergePolicyId" in data:
        changes["merge_policy"] = _merge_policy(data["mergePolicyId"])
    meta = {k: data[k] for k in EXTERNAL_META_KEYS if k in data}
    if meta or (replace and definition.external_meta):
        changes["external_meta"] = meta if replace else {**definition.external_meta, **meta}
    return changes


def _editable(definition: SegmentDefinition) -> dict:
    """The document a JSON Patch is applied to: the fields a client may change."""
    out = audience_aep(definition)
    keys = ["name", "description", "labels", "ttlInDays", "lifecycleState", "audienceId",
            "namespace", *EXTERNAL_META_KEYS]
    if definition.audience_type == PLATFORM:
        keys += ["expression", "evaluationInfo", "mergePolicyId"]
    doc = {k: copy.deepcopy(out[k]) for k in keys if k in out}
    for key in EXTERNAL_META_KEYS:
        if definition.audience_type != PLATFORM:
            doc.setdefault(key, None)
    return doc


class AudienceListApi(APIView):
    @extend_schema(tags=TAG, summary="List audiences", parameters=LIST_PARAMETERS,
                   responses={200: AudienceListOutput, **ERRORS})
    def get(self, request):
        params = request.query_params
        audiences = _audiences().filter(**_property_filters(params))
        for param in ("name", "description"):
            value = clean_param(params, param)
            if value:
                audiences = audiences.filter(**{f"{param}__icontains": value})
        sort = sort_param(params, fields=SORT_FIELDS, default="creationTime:desc")
        page = paginate(audiences.order_by(*sort.order_by), params)
        href = next_href("@/audiences", params, page, extra={"totalCount": page.total})
        return Response({
            "children": [audience_aep(d) for d in page.items],
            "_page": {"totalCount": page.total, "totalPages": page.total_pages,
                      "sortField": sort.field, "sort": sort.direction,
                      "pageSize": len(page.items), "limit": page.limit, "start": page.start,
                      "next": page.next_start},
            "_links": {"next": {"href": href}},
        })

    @extend_schema(tags=TAG, summary="Create an audience", request=AudienceInput,
                   responses={201: AudienceOutput,
                              422: OpenApiResponse(description="Name already used"), **ERRORS})
    def post(self, request):
        body = AudienceInput(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        platform = data["type"] == PLATFORM
        expression = data.get("expression") or {}
        definition = service.definition_create(
            name=data["name"], description=data.get("description", ""),
            expression=expression.get("value", ""),
            expression_format=expression.get("format", "pql/text"),
            merge_policy=_merge_policy(data.get("mergePolicyId")),
            requested=requested_methods(data.get("evaluationInfo")),
            ttl_in_days=data.get("ttlInDays"),
            lifecycle_state=data.get("lifecycleState", "published"),
            origin=(SegmentDefinition.Origin.SEGMENTATION if platform
                    else data.get("originName", SegmentDefinition.Origin.CUSTOM_UPLOAD)),
            labels=data.get("labels", []), audience_id=data.get("audienceId", ""),
            namespace=data.get("namespace") or ("AEPSegments" if platform
                                                else "CustomerAudienceUpload"),
            external_meta={k: data[k] for k in EXTERNAL_META_KEYS if k in data},
            user=request.user, now=timezone.now())
        return Response(audience_aep(_audience(str(definition.pk))), status=201)


class AudienceDetailApi(APIView):
    @extend_schema(tags=TAG, summary="Get an audience",
                   responses={200: AudienceOutput, **ERRORS})
    def get(self, request, audience_id: str):
        return Response(audience_aep(_audience(audience_id)))

    @extend_schema(tags=TAG, summary="Replace an audience", request=AudienceInput,
                   responses={200: AudienceOutput, **ERRORS})
    def put(self, request, audience_id: str):
        definition = _audience(audience_id)
        body = AudienceInput(data=request.data, partial=definition.audience_type != PLATFORM)
        body.is_valid(raise_exception=True)
        service.definition_update(
            definition=definition,
            changes=_changes(body.validated_data, replace=True, definition=definition),
            user=request.user, now=timezone.now())
        return Response(audience_aep(_audience(audience_id)))

    @extend_schema(tags=TAG, summary="Change fields of an audience (JSON Patch, op add)",
                   request=PatchOperation(many=True), responses={200: AudienceOutput, **ERRORS})
    def patch(self, request, audience_id: str):
        definition = _audience(audience_id)
        operations = PatchOperation(data=request.data, many=True)
        operations.is_valid(raise_exception=True)
        document = _editable(definition)
        try:
            patched = jsonpatch.apply_patch(
                document, [{**op, "op": "add"} for op in operations.validated_data])
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise SiftError(ErrorCode.INVALID, f"The patch cannot be applied: {exc}.") from None
        unknown = sorted(set(patched) - set(document))
        if unknown:
            raise SiftError(ErrorCode.INVALID,
                            f"These fields cannot be changed: {', '.join(unknown)}.",
                            {"fields": unknown})
        changed = {k: v for k, v in patched.items() if document.get(k) != v}
        body = AudienceInput(data={"type": definition.audience_type, **changed}, partial=True)
        body.is_valid(raise_exception=True)
        data = {k: v for k, v in body.validated_data.items() if k in changed}
        service.definition_update(definition=definition,
                                  changes=_changes(data, replace=False, definition=definition),
                                  user=request.user, now=timezone.now())
        return Response(audience_aep(_audience(audience_id)))

    @extend_schema(tags=TAG, summary="Delete an audience",
                   responses={204: None, **ERRORS})
    def delete(self, request, audience_id: str):
        definition = _audience(audience_id)
        service.definition_delete(definition=definition, user=request.user, now=timezone.now())
        return Response(status=204)


class AudienceBulkGetApi(APIView):
    @extend_schema(tags=TAG, summary="Get up to 100 audiences", request=BulkGetInput,
                   responses={207: BulkResultsOutput, **ERRORS})
    def post(self, request):
        body = BulkGetInput(data=request.data)
        body.is_valid(raise_exception=True)
        ids = [item["id"] for item in body.validated_data["ids"]]
        by_pk = {str(d.pk): d for d in _audiences().filter(
            pk__in=[i for i in ids if service.is_uuid(i)])}
        found = {i: by_pk[str(uuid.UUID(i))] for i in ids
                 if service.is_uuid(i) and str(uuid.UUID(i)) in by_pk}
        payload = bulk_results(ids=ids, found=found, render=audience_aep, kind="audience",
                               request_id=request.headers.get("x-request-id")
                               or str(uuid.uuid4()))
        return Response(payload, status=207)

