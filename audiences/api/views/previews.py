"""`/data/core/ups/preview` and `/estimate`: create, read the sample, read the estimate, kill."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.api.common import int_param
from audiences.api.serializers.definitions import DeleteOutput
from audiences.api.serializers.previews import (
    EstimateOutput,
    PreviewCreatedOutput,
    PreviewInput,
    PreviewOutput,
    estimate_out,
    preview_created,
    preview_page,
)
from audiences.services import previews as service

TAG = ["Previews and estimates"]
ERRORS = {400: OpenApiResponse(description="Invalid request or PQL"),
          404: OpenApiResponse(description="Not found in this organization and sandbox")}


class PreviewCreateApi(APIView):
    @extend_schema(tags=TAG, summary="Start a preview (and its estimate)", request=PreviewInput,
                   responses={201: PreviewCreatedOutput, **ERRORS})
    def post(self, request):
        body = PreviewInput(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        preview = service.preview_create(
            expression=data["predicateExpression"], predicate_type=data["predicateType"],
            model=data["predicateModel"], graph_type=data.get("graphType"),
            merge_policy_id=data.get("mergePolicyId") or None, user=request.user,
            now=timezone.now())
        response = Response(preview_created(preview), status=201)
        response["X-Location"] = f"/data/core/ups/preview/{preview.pk}"
        return response


class PreviewDetailApi(APIView):
    @extend_schema(tags=TAG, summary="Read a preview's sample of matching profiles",
                   parameters=[OpenApiParameter("offset", int), OpenApiParameter("limit", int)],
                   responses={200: PreviewOutput, **ERRORS})
    def get(self, request, preview_id: str):
        preview = service.preview_get(preview_id=preview_id, now=timezone.now())
        offset = int_param(request.query_params, "offset", default=0)
        limit = min(int_param(request.query_params, "limit", default=1000, minimum=1), 1000)
        return Response(preview_page(preview, offset=offset, limit=limit,
                                     path=f"/data/core/ups/preview/{preview.pk}"))

    @extend_schema(tags=TAG, summary="Stop and delete a preview",
                   responses={200: DeleteOutput, **ERRORS})
    def delete(self, request, preview_id: str):
        service.preview_delete(preview_id=preview_id, now=timezone.now())
        return Response({"status": True, "message": "KILLED"})


class EstimateDetailApi(APIView):
    @extend_schema(tags=TAG, summary="Read a preview's size estimate",
                   responses={200: EstimateOutput, **ERRORS})
    def get(self, request, preview_id: str):
        preview = service.preview_get(preview_id=preview_id, now=timezone.now())
        return Response(estimate_out(preview))
