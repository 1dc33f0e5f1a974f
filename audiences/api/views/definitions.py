"""`/data/core/ups/segment/definitions`: list, create, get, PATCH (whole object), delete, bulk-get,
and `/segment/conversion`. Thin: validate -> one service call -> AEP output."""

from __future__ import annotations

import uuid

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.api.common import (
    BulkGetInput,
    bool_param,
    bulk_results,
    clean_param,
    next_href,
    paginate,
    sort_param,
)
from audiences.api.serializers.definitions import (
    BulkResultsOutput,
    DefinitionInput,
    DefinitionListOutput,
    DefinitionOutput,
    DeleteOutput,
    ExpressionSerializer,
    SandboxSerializer,
    definition_aep,
    requested_methods,
)
from audiences.models import SegmentDefinition
from audiences.services import definitions as service
from portal.errors import ErrorCode, SiftError
from portal.scope import current_scope

PATH = "/data/core/ups/segment/definitions"
TAG = ["Segment definitions"]
SORT_FIELDS = {"name": "name", "creationTime": "created_at", "updateTime": "updated_at",
               "updateEpoch": "updated_at", "id": "pk", "internalId": "pk"}
ERRORS = {400: OpenApiResponse(description="Invalid request (the error body names the field, "
                                           "or the PQL line and column)"),
          403: OpenApiResponse(description="Viewers may not write"),
          404: OpenApiResponse(description="Not found in this organization and sandbox")}

LIST_PARAMETERS = [
    OpenApiParameter("start", int, description="Offset of the first definition"),
    OpenApiParameter("limit", int, description="Page size (at most 100; larger is clamped)"),
    OpenApiParameter("page", int, description="0-based page index (offset += page * limit)"),
    OpenApiParameter("sort", str, description="attribute:asc|desc, e.g. updateTime:desc; "
                                              "attributes: " + ", ".join(SORT_FIELDS)),
    OpenApiParameter("evaluationInfo.batch.enabled", bool, description="Batch definitions"),
    OpenApiParameter("evaluationInfo.continuous.enabled", bool,
                     description="Streaming definitions"),
    OpenApiParameter("evaluationInfo.synchronous.enabled", bool,
                     description="Edge definitions"),
    OpenApiParameter("name", str, description="Name contains (case-insensitive)"),
]


def _request_id(request) -> str:
    return request.headers.get("x-request-id") or str(uuid.uuid4())


def _merge_policy(value):
    return service.merge_policy_get(merge_policy_id=value) if value else None


def definition_changes(data: dict) -> dict:
    """The validated AEP body -> `definition_update` changes (only the fields it carries)."""
    changes: dict = {}
    if "name" in data:
        changes["name"] = data["name"]
    if "description" in data:
        changes["description"] = data["description"]
    if "expression" in data:
        changes["expression"] = data["expression"]["value"]
        changes["expression_format"] = data["expression"]["format"]
    if "evaluationInfo" in data:
        changes["requested"] = requested_methods(data["evaluationInfo"])
    if "mergePolicyId" in data:
        changes["merge_policy"] = _merge_policy(data["mergePolicyId"])
    if "ttlInDays" in data:
        changes["ttl_in_days"] = data["ttlInDays"]
    return changes


def _definition(definition_id: str) -> SegmentDefinition:
    """A PQL definition of this sandbox (external audiences live only under /audiences)."""
    definition = service.definition_get(definition_id=definition_id)
    if definition.audience_type == "ExternalSegment":
        raise SiftError(ErrorCode.NOT_FOUND, f"The segment definition {definition_id} is not "
                                             "found. Use a valid entity and try again.")
    return definition


def _definitions():
    return (SegmentDefinition.objects.exclude(audience_type="ExternalSegment")
            .select_related("sandbox__organization"))


class DefinitionListApi(APIView):
    @extend_schema(tags=TAG, summary="List segment definitions", parameters=LIST_PARAMETERS,
                   responses={200: DefinitionListOutput, **ERRORS})
    def get(self, request):
        params = request.query_params
        definitions = _definitions()
        for param, field in (("evaluationInfo.batch.enabled", "evaluation_batch"),
                             ("evaluationInfo.continuous.enabled", "evaluation_continuous"),
                             ("evaluationInfo.synchronous.enabled", "evaluation_synchronous")):
            value = bool_param(params, param)
            if value is not None:
                definitions = definitions.filter(**{field: value})
        name = clean_param(params, "name")
        if name:
            definitions = definitions.filter(name__icontains=name)
        sort = sort_param(params, fields=SORT_FIELDS, default="creationTime:desc")
        page = paginate(definitions.order_by(*sort.order_by), params, allow_page=True)
        href = next_href(PATH, params, page)
        return Response({
            "segments": [definition_aep(d) for d in page.items],
            "page": {"totalCount": page.total, "totalPages": page.total_pages,
                     "sortField": sort.field, "sort": sort.direction,
                     "pageSize": len(page.items), "limit": page.limit},
            "link": {"next": href} if href else {},
        })

    @extend_schema(tags=TAG, summary="Create a segment definition", request=DefinitionInput,
                   responses={200: DefinitionOutput,
                              422: OpenApiResponse(description="A definition with this name "
                                                               "already exists"), **ERRORS})
    def post(self, request):
        body = DefinitionInput(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        definition = service.definition_create(
            name=data["name"], description=data.get("description", ""),
            expression=data["expression"]["value"],
            expression_format=data["expression"]["format"],
            merge_policy=_merge_policy(data.get("mergePolicyId")),
            requested=requested_methods(data.get("evaluationInfo")),
            ttl_in_days=data.get("ttlInDays"), user=request.user, now=timezone.now())
        response = Response(definition_aep(service.definition_get(definition_id=definition.pk)))
        response["X-Location"] = f"{PATH}/{definition.pk}"
        return response


class DefinitionDetailApi(APIView):
    @extend_schema(tags=TAG, summary="Get a segment definition",
                   responses={200: DefinitionOutput, **ERRORS})
    def get(self, request, definition_id: str):
        return Response(definition_aep(_definition(definition_id)))

    @extend_schema(tags=TAG, summary="Overwrite a segment definition (a whole object)",
                   request=DefinitionInput, responses={200: DefinitionOutput, **ERRORS})
    def patch(self, request, definition_id: str):
        definition = _definition(definition_id)
        body = DefinitionInput(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        service.definition_update(definition=definition,
                                  changes=definition_changes(body.validated_data),
                                  user=request.user, now=timezone.now())
        return Response(definition_aep(service.definition_get(definition_id=definition.pk)))

    @extend_schema(tags=TAG, summary="Delete a segment definition",
                   responses={200: DeleteOutput, **ERRORS})
    def delete(self, request, definition_id: str):
        definition = _definition(definition_id)
        service.definition_delete(definition=definition, user=request.user, now=timezone.now())
        return Response({"status": True,
                         "message": f"Segment definition {definition_id} deleted."})


class DefinitionBulkGetApi(APIView):
    @extend_schema(tags=TAG, summary="Get up to 100 segment definitions", request=BulkGetInput,
                   responses={207: BulkResultsOutput, **ERRORS})
    def post(self, request):
        body = BulkGetInput(data=request.data)
        body.is_valid(raise_exception=True)
        ids = [item["id"] for item in body.validated_data["ids"]]
        by_pk = {str(d.pk): d for d in _definitions().filter(
            pk__in=[i for i in ids if service.is_uuid(i)])}
        found = {i: by_pk[str(uuid.UUID(i))] for i in ids
                 if service.is_uuid(i) and str(uuid.UUID(i)) in by_pk}
        payload = bulk_results(ids=ids, found=found, render=definition_aep,
                               kind="segment definition", request_id=_request_id(request))
        return Response(payload, status=207)


# --- Conversion -------------------------------------------------------------------------------


class ConversionInput(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, max_length=255)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    expression = ExpressionSerializer()
    schema = serializers.DictField(required=False)


class ConversionOutput(serializers.Serializer):
    imsOrgId = serializers.CharField()
    sandbox = SandboxSerializer()
    description = serializers.CharField(required=False)
    expression = ExpressionSerializer()


class ConversionApi(APIView):
    @extend_schema(tags=TAG, summary="Convert an expression between pql/text and pql/json",
                   request=ConversionInput, responses={200: ConversionOutput, **ERRORS})
    def post(self, request):
        body = ConversionInput(data=request.data)
        body.is_valid(raise_exception=True)
        expression = body.validated_data["expression"]
        target, value = service.expression_convert(expression=expression["value"],
                                                   expression_format=expression["format"])
        sandbox = current_scope().sandbox
        out = {"imsOrgId": sandbox.organization.ims_org_id, "sandbox": sandbox.to_aep(),
               "expression": {"type": "PQL", "format": target, "value": value}}
        if "description" in body.validated_data:
            out["description"] = body.validated_data["description"]
        return Response(out)
