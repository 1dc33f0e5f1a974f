"""AEP shapes for segment jobs, schedules and export jobs (output dicts + input serializers)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from audiences.api.common import epoch_ms, epoch_s, no_nul
from audiences.models import ExportJob, Schedule, SegmentJob

JOBS_PATH = "/data/core/ups/segment/jobs"
SCHEDULES_PATH = "/data/core/ups/config/schedules"
EXPORTS_PATH = "/data/core/ups/export/jobs"


class JobBodyObject(serializers.Serializer):
    """The >1500-segment form: `{"schema": {...}, "segments": [{"segmentId": "*"}]}`."""

    segments = serializers.ListField(child=serializers.DictField(), allow_empty=False)


def segment_ids_from_body(data: Any) -> list[str] | str:
    """A job body (a list of `{"segmentId"}` or the object form) as ids, or "*"."""
    from portal.errors import ErrorCode, SiftError

    items = data.get("segments") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items or len(items) > 5000:
        raise SiftError(ErrorCode.INVALID, 'The body must be a list of {"segmentId": ...} '
                        '(or {"segments": [...]}) with 1 to 5000 entries.', {"field": "body"})
    ids = []
    for index, item in enumerate(items):
        value = item.get("segmentId") if isinstance(item, dict) else None
        if not isinstance(value, str) or not value or "\x00" in value or len(value) > 255:
            raise SiftError(ErrorCode.INVALID, f"Entry {index} needs a string segmentId.",
                            {"field": f"[{index}].segmentId"})
        ids.append(value)
    return "*" if "*" in ids else ids


def job_aep(job: SegmentJob) -> dict[str, Any]:
    sandbox = job.sandbox
    runs = list(job.runs.all())
    out = {
        "id": str(job.pk),
        "imsOrgId": sandbox.organization.ims_org_id,
        "sandbox": sandbox.to_aep(),
        "profileInstanceId": "ups",
        "source": job.source,
        "status": job.status,
        "segments": [{"segmentId": s} for s in job.requested_segments] if
        job.requested_segments == ["*"] else [
            {"segmentId": str(r.definition_id or ""), "segment": {
                "id": str(r.definition_id or ""), "version": r.definition_version,
                "name": r.definition_name, "status": r.status, "evaluator": r.evaluator,
                "durationInMs": r.duration_ms, "errorCode": r.error_code,
                "errorMessage": r.error_message}} for r in runs],
        "runs": [{"segmentId": str(r.definition_id or ""), "name": r.definition_name,
                  "status": r.status, "evaluator": r.evaluator, "durationInMs": r.duration_ms,
                  "qualified": r.qualified, "realized": r.realized, "existing": r.existing,
                  "exited": r.exited, "errorCode": r.error_code,
                  "errorMessage": r.error_message} for r in runs],
        "metrics": job.metrics,
        "errors": job.errors,
        "snapshot": {"name": job.snapshot_name, "timestamp": epoch_ms(job.snapshot_at)},
        "progress": {"done": job.progress_done, "total": job.progress_total},
        "schema": {"name": "_xdm.context.profile"},
        "_links": {"cancel": {"href": f"{JOBS_PATH}/{job.pk}", "method": "DELETE"},
                   "checkStatus": {"href": f"{JOBS_PATH}/{job.pk}", "method": "GET"}},
        "creationTime": epoch_ms(job.created_at),
        "updateTime": epoch_ms(job.updated_at),
        "updateEpoch": epoch_s(job.updated_at),
    }
    if job.schedule_id:
        out["properties"] = {"scheduleId": str(job.schedule_id), "runId": str(job.pk)}
    if job.superseded_by_id:
        out["supersededBy"] = str(job.superseded_by_id)
    return out


class ScheduleInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    type = serializers.ChoiceField(choices=Schedule.Type.values)
    schedule = serializers.CharField(max_length=120)
    state = serializers.ChoiceField(choices=Schedule.State.values, default="inactive")
    properties = serializers.DictField(default=dict)

    def validate_properties(self, value):
        return no_nul(value, "properties")

    def validate_name(self, value):
        return no_nul(value, "name")

    def validate_schedule(self, value):
        return no_nul(value, "schedule")


class PatchOperation(serializers.Serializer):
    op = serializers.ChoiceField(choices=["add", "replace"])
    path = serializers.CharField(max_length=100)
    value = serializers.JSONField()


def schedule_aep(schedule: Schedule) -> dict[str, Any]:
    sandbox = schedule.sandbox
    return {
        "id": str(schedule.pk),
        "imsOrgId": sandbox.organization.ims_org_id,
        "sandbox": sandbox.to_aep(),
        "name": schedule.name,
        "state": schedule.state,
        "type": schedule.type,
        "schedule": schedule.schedule,
        "properties": schedule.properties,
        "isSystem": schedule.is_system,
        "lastRunTime": epoch_ms(schedule.last_run_at) or None,
        "nextRunTime": epoch_ms(schedule.next_run_at) or None,
        "createEpoch": epoch_s(schedule.created_at),
        "updateEpoch": epoch_s(schedule.updated_at),
    }


class ExportInput(serializers.Serializer):
    fields = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    format = serializers.ChoiceField(choices=["csv", "jsonl"], default="csv")
    filter = serializers.DictField()

    def validate_filter(self, value):
        return no_nul(value, "filter")

    def validate_fields(self, value):
        return no_nul(value, "fields")


def export_aep(export: ExportJob) -> dict[str, Any]:
    return {
        "id": export.pk,
        "jobType": "BATCH",
        "status": export.status,
        "format": export.file_format,
        "fields": ",".join(export.fields),
        "filter": {"segments": [{"segmentId": str(export.definition_id or ""),
                                 "segmentNs": "ups", "status": export.statuses}]},
        "metrics": export.metrics,
        "errors": export.errors,
        "_links": {"file": {"href": f"{EXPORTS_PATH}/{export.pk}/file"}}
        if export.status == ExportJob.Status.SUCCEEDED else {},
        "creationTime": epoch_ms(export.created_at),
        "updateTime": epoch_ms(export.updated_at),
    }
