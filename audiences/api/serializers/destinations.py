"""`/config/destinations`: the input accepted and the JSON answered for destinations,
activations and deliveries."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from audiences.api.common import epoch_ms
from audiences.models import Activation, Delivery, Destination
from portal.models import WRITE_ROLES
from portal.scope import current_scope


class DestinationInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    kind = serializers.ChoiceField(choices=Destination.Kind.values)
    enabled = serializers.BooleanField(required=False, default=True)
    url = serializers.CharField(required=False, allow_blank=True, max_length=2000,
                                help_text="Webhook: the http(s) URL Sift POSTs to")
    folder = serializers.CharField(required=False, allow_blank=True, max_length=500,
                                   help_text="File: a folder relative to the export directory")
    format = serializers.ChoiceField(choices=Destination.FileFormat.values, required=False)
    mode = serializers.ChoiceField(choices=Destination.Mode.values, required=False)
    schedule = serializers.ChoiceField(choices=Destination.Schedule.values, required=False)


class DestinationPatchInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    enabled = serializers.BooleanField(required=False)
    url = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    folder = serializers.CharField(required=False, allow_blank=True, max_length=500)
    format = serializers.ChoiceField(choices=Destination.FileFormat.values, required=False)
    mode = serializers.ChoiceField(choices=Destination.Mode.values, required=False)
    schedule = serializers.ChoiceField(choices=Destination.Schedule.values, required=False)
    rotateSecret = serializers.BooleanField(required=False, default=False)  # noqa: N815


def destination_fields(data: dict[str, Any]) -> dict[str, Any]:
    """API names -> service keyword names (only the fields present)."""
    names = {"name": "name", "description": "description", "enabled": "enabled", "url": "url",
             "folder": "folder", "format": "file_format", "mode": "mode",
             "schedule": "schedule"}
    return {names[k]: v for k, v in data.items() if k in names}


class DestinationOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    description = serializers.CharField()
    kind = serializers.ChoiceField(choices=Destination.Kind.values)
    enabled = serializers.BooleanField()
    url = serializers.CharField()
    secret = serializers.CharField(required=False,
                                   help_text="HMAC key of X-Sift-Signature (writers only)")
    folder = serializers.CharField()
    format = serializers.CharField()
    mode = serializers.CharField()
    schedule = serializers.CharField()
    lastExportTime = serializers.IntegerField()  # noqa: N815
    creationTime = serializers.IntegerField()  # noqa: N815
    updateTime = serializers.IntegerField()  # noqa: N815
    deliveries = serializers.DictField(child=serializers.IntegerField(), required=False)


def destination_json(destination: Destination, *, counts: dict[str, int] | None = None
                     ) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": str(destination.pk), "name": destination.name,
        "description": destination.description, "kind": destination.kind,
        "enabled": destination.enabled, "url": destination.url, "folder": destination.folder,
        "format": destination.file_format, "mode": destination.mode,
        "schedule": destination.schedule,
        "lastExportTime": epoch_ms(destination.last_export_at),
        "creationTime": epoch_ms(destination.created_at),
        "updateTime": epoch_ms(destination.updated_at),
    }
    if current_scope().role in WRITE_ROLES:
        out["secret"] = destination.secret
    if counts is not None:
        out["deliveries"] = counts
    return out


class PageOutput(serializers.Serializer):
    totalCount = serializers.IntegerField()  # noqa: N815
    totalPages = serializers.IntegerField()  # noqa: N815
    pageSize = serializers.IntegerField()  # noqa: N815
    limit = serializers.IntegerField()


class DestinationListOutput(serializers.Serializer):
    destinations = DestinationOutput(many=True)
    page = PageOutput()
    link = serializers.DictField()


class ActivationInput(serializers.Serializer):
    audienceId = serializers.CharField(max_length=100)  # noqa: N815
    namespace = serializers.CharField(max_length=100, default="Email")
    attributes = serializers.ListField(child=serializers.CharField(max_length=300),
                                       required=False, default=list, max_length=100)


class ActivationPatchInput(serializers.Serializer):
    namespace = serializers.CharField(max_length=100, required=False)
    attributes = serializers.ListField(child=serializers.CharField(max_length=300),
                                       required=False, max_length=100)


class ActivationOutput(serializers.Serializer):
    id = serializers.IntegerField()
    destinationId = serializers.UUIDField()  # noqa: N815
    audienceId = serializers.UUIDField()  # noqa: N815
    audienceName = serializers.CharField()  # noqa: N815
    namespace = serializers.CharField()
    attributes = serializers.ListField(child=serializers.CharField())
    creationTime = serializers.IntegerField()  # noqa: N815


def activation_json(activation: Activation) -> dict[str, Any]:
    return {"id": activation.pk, "destinationId": str(activation.destination_id),
            "audienceId": str(activation.definition_id),
            "audienceName": activation.definition.name, "namespace": activation.namespace,
            "attributes": activation.attributes,
            "creationTime": epoch_ms(activation.created_at)}


class ActivationListOutput(serializers.Serializer):
    activations = ActivationOutput(many=True)
    page = PageOutput()
    link = serializers.DictField()


class DeliveryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    idempotencyKey = serializers.CharField()  # noqa: N815
    changeId = serializers.IntegerField(allow_null=True)  # noqa: N815
    audienceId = serializers.CharField(allow_null=True)  # noqa: N815
    status = serializers.ChoiceField(choices=Delivery.Status.values)
    attempts = serializers.IntegerField()
    replays = serializers.IntegerField()
    nextAttemptTime = serializers.IntegerField()  # noqa: N815
    lastAttemptTime = serializers.IntegerField()  # noqa: N815
    deliveredTime = serializers.IntegerField()  # noqa: N815
    lastStatusCode = serializers.IntegerField(allow_null=True)  # noqa: N815
    lastLatencyMs = serializers.IntegerField(allow_null=True)  # noqa: N815
    lastError = serializers.CharField()  # noqa: N815
    payload = serializers.DictField()


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    return {"id": delivery.pk, "idempotencyKey": delivery.idempotency_key,
            "changeId": delivery.change_id,
            "audienceId": str(delivery.definition_id) if delivery.definition_id else None,
            "status": delivery.status, "attempts": delivery.attempts,
            "replays": delivery.replays, "nextAttemptTime": epoch_ms(delivery.next_attempt_at),
            "lastAttemptTime": epoch_ms(delivery.last_attempt_at),
            "deliveredTime": epoch_ms(delivery.delivered_at),
            "lastStatusCode": delivery.last_status_code,
            "lastLatencyMs": delivery.last_latency_ms, "lastError": delivery.last_error,
            "payload": delivery.payload}


class DeliveryListOutput(serializers.Serializer):
    deliveries = DeliveryOutput(many=True)
    page = PageOutput()
    link = serializers.DictField()


class ReplayInput(serializers.Serializer):
    ids = serializers.ListField(child=serializers.IntegerField(min_value=1,
                                                               max_value=2**62),
                                required=False, max_length=1000,
                                help_text="Dead deliveries to replay; all when absent")


class ReplayOutput(serializers.Serializer):
    replayed = serializers.IntegerField()
