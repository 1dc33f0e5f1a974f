"""`/audiences`: the newer audience object over the same rows as `/segment/definitions`."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from audiences.api.common import epoch_ms, epoch_s, no_nul
from audiences.api.serializers.definitions import (
    EXTENSION_KEY,
    DataGovernanceSerializer,
    EligibilitySerializer,
    EvaluationInfoSerializer,
    ExpressionSerializer,
    SandboxSerializer,
    SchemaSerializer,
    eligibility_out,
    evaluation_info,
    expression_out,
)
from audiences.models import SegmentDefinition

Origin = SegmentDefinition.Origin
PLATFORM = "SegmentDefinition"
EXTERNAL_TYPES = ("ExternalSegment", "ExternalAudience")
LIFECYCLE_ALIASES = {"active": "published"}  # Adobe's deprecated name for published
DEFINED_ON = [{"meta:resourceType": "unions", "meta:containerId": "tenant",
               "$ref": "https://ns.adobe.com/xdm/context/profile__union"}]
EXTERNAL_META_KEYS = ("datasetId", "linkedAudienceRef", "audienceMeta")


class JsonObjectField(serializers.DictField):
    def to_internal_value(self, data):
        return no_nul(super().to_internal_value(data), self.field_name)


class AudienceInput(serializers.Serializer):
    """POST and PUT body, for Platform audiences (PQL) and external ones (uploads)."""

    name = serializers.CharField(max_length=255, trim_whitespace=False)
    description = serializers.CharField(allow_blank=True, required=False, max_length=10_000)
    type = serializers.ChoiceField(choices=[PLATFORM, *EXTERNAL_TYPES], default=PLATFORM)
    expression = ExpressionSerializer(required=False)
    schema = SchemaSerializer(required=False)
    evaluationInfo = EvaluationInfoSerializer(required=False)
    mergePolicyId = serializers.CharField(max_length=64, required=False, allow_null=True,
                                          allow_blank=True)
    labels = serializers.ListField(child=serializers.CharField(max_length=100), required=False,
                                   max_length=100)
    ttlInDays = serializers.IntegerField(min_value=1, max_value=3650, required=False,
                                         allow_null=True)
    lifecycleState = serializers.CharField(max_length=20, required=False)
    audienceId = serializers.CharField(max_length=255, required=False, allow_blank=True)
    namespace = serializers.CharField(max_length=40, required=False, allow_blank=True)
    originName = serializers.ChoiceField(choices=Origin.values, required=False)
    datasetId = serializers.CharField(max_length=64, required=False, allow_blank=True)
    linkedAudienceRef = JsonObjectField(required=False)
    audienceMeta = JsonObjectField(required=False)
    profileInstanceId = serializers.CharField(required=False, allow_blank=True, max_length=64)

    def validate_lifecycleState(self, value: str) -> str:
        return LIFECYCLE_ALIASES.get(value, value)

    def validate(self, attrs):
        platform = attrs.get("type", PLATFORM) == PLATFORM
        if platform and not self.partial and "expression" not in attrs:
            raise serializers.ValidationError(
                {"expression": "a SegmentDefinition audience needs a PQL expression."})
        if not platform and "expression" in attrs:
            raise serializers.ValidationError(
                {"expression": "external audiences carry no expression."})
        return attrs


class PatchOperation(serializers.Serializer):
    op = serializers.ChoiceField(choices=["add", "replace"])
    path = serializers.CharField(max_length=200)
    value = serializers.JSONField(required=False)

    def validate_path(self, value: str) -> str:
        if not value.startswith("/"):
            raise serializers.ValidationError("must be a JSON pointer such as /name.")
        return value

    def validate(self, attrs):
        if "value" not in attrs:
            raise serializers.ValidationError({"value": "is required for add."})
        no_nul(attrs["value"], "value")
        return attrs


class AudienceOutput(serializers.Serializer):
    """An audience as `/audiences` returns it; Platform-only and external-only fields are
    present for their kind only."""

    id = serializers.UUIDField()
    audienceId = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    namespace = serializers.CharField()
    imsOrgId = serializers.CharField()
    sandbox = SandboxSerializer()
    isSystem = serializers.BooleanField()
    type = serializers.CharField()
    originName = serializers.CharField()
    lifecycleState = serializers.ChoiceField(choices=SegmentDefinition.Lifecycle.values)
    labels = serializers.ListField(child=serializers.CharField())
    createdBy = serializers.CharField(allow_blank=True)
    lastModifiedBy = serializers.CharField(allow_blank=True)
    creationTime = serializers.IntegerField()
    createEpoch = serializers.IntegerField()
    updateEpoch = serializers.IntegerField()
    updateTime = serializers.IntegerField()
    _etag = serializers.CharField()
    dependents = serializers.ListField(child=serializers.CharField(),
                                       help_text="audiences that reference this one")
    dependencies = serializers.ListField(child=serializers.CharField(),
                                         help_text="audiences this one references")
    ttlInDays = serializers.IntegerField(allow_null=True, required=False)
    schema = SchemaSerializer(required=False)
    profileInstanceId = serializers.CharField(required=False)
    expression = ExpressionSerializer(required=False)
    mergePolicyId = serializers.CharField(required=False)
    evaluationInfo = EvaluationInfoSerializer(required=False)
    dataGovernancePolicy = DataGovernanceSerializer(required=False)
    definedOn = serializers.ListField(child=serializers.DictField(), required=False)
    overridePerformanceWarnings = serializers.BooleanField(required=False)
    datasetId = serializers.CharField(required=False)
    linkedAudienceRef = serializers.DictField(required=False)
    audienceMeta = serializers.DictField(required=False)

    def to_representation(self, definition: SegmentDefinition) -> dict[str, Any]:
        return audience_aep(definition)


AudienceOutput._declared_fields[EXTENSION_KEY] = EligibilitySerializer(required=False)


def _ids(definition: SegmentDefinition, relation: str) -> list[str]:
    cache = getattr(definition, "_prefetched_objects_cache", {})
    if relation in cache:
        return sorted(str(d.pk) for d in cache[relation])
    return sorted(str(pk) for pk in getattr(definition, relation).values_list("pk", flat=True))


def audience_aep(definition: SegmentDefinition) -> dict[str, Any]:
    sandbox = definition.sandbox
    out: dict[str, Any] = {
        "id": str(definition.pk),
        "audienceId": definition.audience_id or str(definition.pk),
        "name": definition.name,
        "description": definition.description,
        "namespace": definition.namespace,
        "imsOrgId": sandbox.organization.ims_org_id,
        "sandbox": sandbox.to_aep(),
        "isSystem": False,
        "type": definition.audience_type,
        "originName": definition.origin,
        "lifecycleState": definition.lifecycle_state,
        "labels": list(definition.labels or []),
        "createdBy": definition.created_by.username if definition.created_by else "",
        "lastModifiedBy": definition.updated_by.username if definition.updated_by else "",
        "creationTime": epoch_ms(definition.created_at),
        "createEpoch": epoch_s(definition.created_at),
        "updateEpoch": epoch_s(definition.updated_at),
        "updateTime": epoch_ms(definition.updated_at),
        "_etag": f'"{definition.version}-{epoch_ms(definition.updated_at)}"',
        "dependents": _ids(definition, "dependents"),
        "dependencies": _ids(definition, "dependencies"),
        "ttlInDays": definition.ttl_in_days,
    }
    if definition.audience_type == PLATFORM:
        out.update({
            "schema": {"name": definition.schema_name},
            "profileInstanceId": "ups",
            "expression": expression_out(definition),
            "mergePolicyId": str(definition.merge_policy_id),
            "evaluationInfo": evaluation_info(definition),
            "dataGovernancePolicy": {"excludeOptOut": True},
            "definedOn": DEFINED_ON,
            "overridePerformanceWarnings": False,
            EXTENSION_KEY: eligibility_out(definition),
        })
    else:
        meta = definition.external_meta or {}
        out.update({key: meta[key] for key in EXTERNAL_META_KEYS if key in meta})
    return out


class AudiencePageSerializer(serializers.Serializer):
    totalCount = serializers.IntegerField()
    totalPages = serializers.IntegerField()
    sortField = serializers.CharField()
    sort = serializers.ChoiceField(choices=["asc", "desc"])
    pageSize = serializers.IntegerField()
    limit = serializers.IntegerField()
    start = serializers.IntegerField()
    next = serializers.IntegerField(help_text="start of the next page; 0 on the last page")


class HrefSerializer(serializers.Serializer):
    href = serializers.CharField(allow_blank=True)


class AudienceLinksSerializer(serializers.Serializer):
    next = HrefSerializer()


class AudienceListOutput(serializers.Serializer):
    children = AudienceOutput(many=True)
    _page = AudiencePageSerializer()
    _links = AudienceLinksSerializer()
