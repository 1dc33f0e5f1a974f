"""`/segment/jobs`, `/config/schedules` and `/export/jobs`: validate, one service call, AEP out."""

from __future__ import annotations

from django.http import FileResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.api.common import clean_param, int_param, next_href, paginate
from audiences.api.serializers.batch import (
    EXPORTS_PATH,
    JOBS_PATH,
    SCHEDULES_PATH,
    ExportInput,
    PatchOperation,
    ScheduleInput,
    export_aep,
    job_aep,
    schedule_aep,
    segment_ids_from_body,
)
from audiences.models import ExportJob, Schedule, SegmentJob
from audiences.services import batch as jobs
from audiences.services import exports, schedules
from portal.errors import ErrorCode, SiftError

ERRORS = {400: OpenApiResponse(description="Invalid request"),
          404: OpenApiResponse(description="Not found in this organization and sandbox")}
OBJECT = {200: OpenApiTypes.OBJECT, **ERRORS}


def _page(items, page, path, params) -> dict:
    href = next_href(path, params, page)
    return {"_page": {"totalCount": page.total, "pageSize": len(items),
                      "start": page.start, "next": page.next_start or None},
            "children": items, "_links": {"next": {"href": href} if href else {}}}


class SegmentJobListApi(APIView):
    @extend_schema(tags=["Segment jobs"], summary="List segment jobs",
                   parameters=[OpenApiParameter("status", str), OpenApiParameter("snapshot.name",
                                                                                 str),
                               OpenApiParameter("start", int), OpenApiParameter("limit", int)],
                   responses=OBJECT)
    def get(self, request):
        params = request.query_params
        qs = SegmentJob.objects.select_related("sandbox__organization").prefetch_related("runs")
        status = clean_param(params, "status")
        if status:
            wanted = [s.strip().upper() for s in status.split(",")]
            if not set(wanted) <= set(SegmentJob.Status.values):
                raise SiftError(ErrorCode.INVALID, "status must be one of "
                                + ", ".join(SegmentJob.Status.values), {"parameter": "status"})
            qs = qs.filter(status__in=wanted)
        name = clean_param(params, "snapshot.name")
        if name:
            qs = qs.filter(snapshot_name=name)
        page = paginate(qs.order_by("-created_at", "-pk"), params)
        return Response(_page([job_aep(j) for j in page.items], page, JOBS_PATH, params))

    @extend_schema(tags=["Segment jobs"], summary="Start a segment job",
                   request=OpenApiTypes.OBJECT, responses=OBJECT)
    def post(self, request):
        job = jobs.segment_job_create(segment_ids=segment_ids_from_body(request.data),
                                      source=SegmentJob.Source.API, now=timezone.now(),
                                      user=request.user)
        return Response(job_aep(jobs.segment_job_get(job_id=job.pk)))


class SegmentJobDetailApi(APIView):
    @extend_schema(tags=["Segment jobs"], summary="Read a segment job", responses=OBJECT)
    def get(self, request, job_id: str):
        return Response(job_aep(jobs.segment_job_get(job_id=job_id)))

    @extend_schema(tags=["Segment jobs"], summary="Cancel a segment job", responses=OBJECT)
    def delete(self, request, job_id: str):
        job = jobs.segment_job_cancel(job_id=job_id, now=timezone.now())
        return Response({"status": True,
                         "message": f"Segment job with id '{job.pk}' has been marked for "
                                    "cancelling"})


class ScheduleListApi(APIView):
    @extend_schema(tags=["Schedules"], summary="List schedules",
                   parameters=[OpenApiParameter("start", int), OpenApiParameter("limit", int)],
                   responses=OBJECT)
    def get(self, request):
        qs = Schedule.objects.select_related("sandbox__organization").order_by("name", "pk")
        page = paginate(qs, request.query_params)
        return Response(_page([schedule_aep(s) for s in page.items], page, SCHEDULES_PATH,
                              request.query_params))

    @extend_schema(tags=["Schedules"], summary="Create a schedule", request=ScheduleInput,
                   responses=OBJECT)
    def post(self, request):
        body = ScheduleInput(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        schedule = schedules.schedule_create(
            name=data["name"], schedule_type=data["type"], schedule=data["schedule"],
            state=data["state"], properties=data["properties"], now=timezone.now())
        return Response(schedule_aep(schedule))


class ScheduleDetailApi(APIView):
    @extend_schema(tags=["Schedules"], summary="Read a schedule", responses=OBJECT)
    def get(self, request, schedule_id: str):
        return Response(schedule_aep(schedules.schedule_get(schedule_id=schedule_id)))

    @extend_schema(tags=["Schedules"], summary="Update a schedule (JSON Patch)",
                   request=PatchOperation(many=True),
                   responses={204: OpenApiResponse(description="Updated"), **ERRORS})
    def patch(self, request, schedule_id: str):
        body = PatchOperation(data=request.data, many=True)
        body.is_valid(raise_exception=True)
        schedules.schedule_patch(schedule_id=schedule_id,
                                 operations=[dict(op) for op in body.validated_data],
                                 now=timezone.now())
        return Response(status=204)

    @extend_schema(tags=["Schedules"], summary="Delete a schedule",
                   responses={204: OpenApiResponse(description="Deleted"), **ERRORS})
    def delete(self, request, schedule_id: str):
        schedules.schedule_delete(schedule_id=schedule_id)
        return Response(status=204)


class ExportJobListApi(APIView):
    @extend_schema(tags=["Export jobs"], summary="List export jobs",
                   parameters=[OpenApiParameter("status", str), OpenApiParameter("limit", int),
                               OpenApiParameter("offset", int)], responses=OBJECT)
    def get(self, request):
        params = request.query_params
        qs = ExportJob.objects.order_by("-created_at", "-pk")
        status = clean_param(params, "status")
        if status:
            qs = qs.filter(status=status.upper())
        limit = min(int_param(params, "limit", default=20, minimum=1), 100)
        offset = int_param(params, "offset", default=0)
        records = [export_aep(e) for e in qs[offset:offset + limit + 1]]
        more = len(records) > limit
        return Response({"records": records[:limit],
                         "page": {"sortField": "createdTime", "sort": "desc",
                                  "pageOffset": offset, "pageSize": min(len(records), limit)},
                         "link": {"next": f"{EXPORTS_PATH}?limit={limit}&offset="
                                          f"{offset + limit}" if more else ""}})

    @extend_schema(tags=["Export jobs"], summary="Export an audience's members",
                   request=ExportInput, responses=OBJECT)
    def post(self, request):
        body = ExportInput(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        segments = data["filter"].get("segments")
        if not isinstance(segments, list) or len(segments) != 1 or not isinstance(
                segments[0], dict) or not isinstance(segments[0].get("segmentId"), str):
            raise SiftError(ErrorCode.INVALID, "filter.segments must hold exactly one "
                            '{"segmentId": ...}.', {"field": "filter.segments"})
        status = segments[0].get("status")
        if status is not None and not (isinstance(status, list) and all(
                isinstance(s, str) for s in status)):
            raise SiftError(ErrorCode.INVALID, "filter.segments[0].status must be a list.",
                            {"field": "filter.segments.status"})
        fields = [f.strip() for f in (data.get("fields") or "").split(",") if f.strip()]
        export = exports.export_create(
            segment_id=segments[0]["segmentId"], file_format=data["format"], fields=fields,
            statuses=status, request=request.data, user=request.user, now=timezone.now())
        return Response(export_aep(exports.export_get(export_id=export.pk)))


class ExportJobDetailApi(APIView):
    @extend_schema(tags=["Export jobs"], summary="Read an export job", responses=OBJECT)
    def get(self, request, export_id: str):
        return Response(export_aep(exports.export_get(export_id=export_id)))


class ExportJobFileApi(APIView):
    @extend_schema(tags=["Export jobs"], summary="Download an export's file (streamed)",
                   responses={200: OpenApiTypes.BINARY, **ERRORS})
    def get(self, request, export_id: str):
        export = exports.export_get(export_id=export_id)
        if export.status != ExportJob.Status.SUCCEEDED:
            raise SiftError(ErrorCode.CONFLICT, f"Export job {export.pk} is {export.status}; "
                            "the file exists once it has SUCCEEDED.")
        path = exports.export_path(export)
        content_type = "text/csv" if export.file_format == "csv" else "application/x-ndjson"
        return FileResponse(open(path, "rb"), as_attachment=True,  # noqa: SIM115
                            filename=path.name, content_type=content_type)
