"""`/segment/definitions`: the input it accepts and the AEP JSON it answers with."""

from __future__ import annotations

import json
from typing import Any

from rest_framework import serializers

from audiences.api.common import epoch_ms, epoch_s, no_nul
from audiences.models import SegmentDefinition

PROFILE_SCHEMA = "_xdm.context.profile"
EXTENSION_KEY = "sift:eligibility"


# --- Shared pieces ----------------------------------------------------------------------------


class EnabledSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()


class EvaluationInfoSerializer(serializers.Serializer):
    """`continuous` is streaming, `synchronous` is edge; absent means batch."""

    batch = EnabledSerializer(required=False)
    continuous = EnabledSerializer(required=False)
    synchronous = EnabledSerializer(required=False)


class ExpressionValueField(serializers.JSONField):
    """The PQL text, or for `pql/json` the tree (as a JSON string, or inline)."""

    def to_internal_value(self, data):
        if not isinstance(data, str | dict | list):
            raise serializers.ValidationError("must be a string (or a pql/json tree).")
        return no_nul(data, "expression.value")


class ExpressionSerializer(serializers.Serializer):
    type = serializers.CharField(max_length=10, default="PQL")
    format = serializers.ChoiceField(choices=["pql/text", "pql/json"])
    value = ExpressionValueField()

    def validate_type(self, value: str) -> str:
        if value.upper() != "PQL":
            raise serializers.ValidationError("only PQL expressions are supported.")
        return "PQL"

    def validate(self, attrs):
        value = attrs["value"]
        if attrs["format"] == "pql/text" and not isinstance(value, str):
            raise serializers.ValidationError({"value": "pql/text expressions are strings."})
        if not isinstance(value, str):
            attrs["value"] = json.dumps(value)
        if not attrs["value"].strip():
            raise serializers.ValidationError({"value": "the expression is empty."})
        return attrs


class SchemaSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)

    def validate_name(self, value: str) -> str:
        if value != PROFILE_SCHEMA:
            raise serializers.ValidationError(
                f"only {PROFILE_SCHEMA!r} definitions are supported.")
        return value


class SandboxSerializer(serializers.Serializer):
    sandboxId = serializers.CharField()
    sandboxName = serializers.CharField()
    type = serializers.ChoiceField(choices=["production", "development"])
    default = serializers.BooleanField()


class DataGovernanceSerializer(serializers.Serializer):
    excludeOptOut = serializers.BooleanField()


class EligibilitySerializer(serializers.Serializer):
    """Sift's extension: which methods the rules allow, and why a requested one was refused."""

    batch = serializers.BooleanField()
    streaming = serializers.BooleanField()
    edge = serializers.BooleanField()
    queryType = serializers.CharField(allow_blank=True)
    ruleset = serializers.CharField(allow_blank=True)
    reasons = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))
    suggestions = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()))
    requested = serializers.DictField(child=serializers.BooleanField())
    refused = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


def requested_methods(evaluation_info: dict | None) -> dict[str, bool] | None:
    """AEP's evaluationInfo -> the service's {"batch", "streaming", "edge"} (None: not given)."""
    if evaluation_info is None:
        return None

    def enabled(key: str) -> bool:
        return bool((evaluation_info.get(key) or {}).get("enabled", False))

    return {"batch": enabled("batch"), "streaming": enabled("continuous"),
            "edge": enabled("synchronous")}


def evaluation_info(definition: SegmentDefinition) -> dict[str, Any]:
    return {"batch": {"enabled": definition.evaluation_batch},
            "continuous": {"enabled": definition.evaluation_continuous},
            "synchronous": {"enabled": definition.evaluation_synchronous}}


def expression_out(definition: SegmentDefinition) -> dict[str, str]:
    value = definition.expression
    if definition.expression_format == "pql/json" and value:
        from audiences.services.definitions import expression_convert

        _, value = expression_convert(expression=value, expression_format="pql/text")
    return {"type": "PQL", "format": definition.expression_format or "pql/text", "value": value}


def eligibility_out(definition: SegmentDefinition) -> dict[str, Any]:
    stored = definition.eligibility or {}
    return {
        "batch": bool(stored.get("batch", True)), "streaming": bool(stored.get("streaming")),
        "edge": bool(stored.get("edge")), "queryType": stored.get("queryType", ""),
        "ruleset": definition.eligibility_ruleset or stored.get("ruleset", ""),
        "reasons": stored.get("reasons", {}), "suggestions": stored.get("suggestions", {}),
        "requested": stored.get("requested", definition.requested_evaluation or {}),
        "refused": stored.get("refused", {}),
    }


# --- Input --------------------------------------------------------------------------------------


class DefinitionInput(serializers.Serializer):
    """POST and PATCH body. PATCH takes a whole object (as Adobe's does); fields it leaves out
    keep their values, read-only fields it carries (id, imsOrgId, times...) are ignored."""

    name = serializers.CharField(max_length=255, trim_whitespace=False)
    description = serializers.CharField(allow_blank=True, required=False, max_length=10_000)
    expression = ExpressionSerializer()
    schema = SchemaSerializer()
    evaluationInfo = EvaluationInfoSerializer(required=False)
    mergePolicyId = serializers.CharField(max_length=64, required=False, allow_null=True,
                                          allow_blank=True)
    ttlInDays = serializers.IntegerField(min_value=1, max_value=3650, required=False,
                                         allow_null=True)
    profileInstanceId = serializers.CharField(required=False, allow_blank=True, max_length=64)
    payloadSchema = serializers.CharField(required=False, allow_blank=True, max_length=200)


# --- Output -------------------------------------------------------------------------------------


class DefinitionOutput(serializers.Serializer):
    """A segment definition exactly as the Segmentation Service returns it."""

    id = serializers.UUIDField()
    schema = SchemaSerializer()
    ttlInDays = serializers.IntegerField(allow_null=True)
    profileInstanceId = serializers.CharField()
    imsOrgId = serializers.CharField()
    sandbox = SandboxSerializer()
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    expression = ExpressionSerializer()
    evaluationInfo = EvaluationInfoSerializer()
    mergePolicyId = serializers.CharField()
    dataGovernancePolicy = DataGovernanceSerializer()
    creationTime = serializers.IntegerField(help_text="milliseconds since the epoch")
    updateEpoch = serializers.IntegerField(help_text="seconds since the epoch")
    updateTime = serializers.IntegerField(help_text="milliseconds since the epoch")

    def to_representation(self, definition: SegmentDefinition) -> dict[str, Any]:
        return definition_aep(definition)


DefinitionOutput._declared_fields[EXTENSION_KEY] = EligibilitySerializer()


def definition_aep(definition: SegmentDefinition) -> dict[str, Any]:
    sandbox = definition.sandbox
    return {
        "id": str(definition.pk),
        "schema": {"name": definition.schema_name},
        "ttlInDays": definition.ttl_in_days,
        "profileInstanceId": "ups",
        "imsOrgId": sandbox.organization.ims_org_id,
        "sandbox": sandbox.to_aep(),
        "name": definition.name,
        "description": definition.description,
        "expression": expression_out(definition),
        "evaluationInfo": evaluation_info(definition),
        "mergePolicyId": str(definition.merge_policy_id),
        "dataGovernancePolicy": {"excludeOptOut": True},
        "creationTime": epoch_ms(definition.created_at),
        "updateEpoch": epoch_s(definition.updated_at),
        "updateTime": epoch_ms(definition.updated_at),
        EXTENSION_KEY: eligibility_out(definition),
    }


class DefinitionPageSerializer(serializers.Serializer):
    totalCount = serializers.IntegerField()
    totalPages = serializers.IntegerField()
    sortField = serializers.CharField()
    sort = serializers.ChoiceField(choices=["asc", "desc"])
    pageSize = serializers.IntegerField()
    limit = serializers.IntegerField()


class DefinitionLinkSerializer(serializers.Serializer):
    next = serializers.CharField(required=False)


class DefinitionListOutput(serializers.Serializer):
    segments = DefinitionOutput(many=True)
    page = DefinitionPageSerializer()
    link = DefinitionLinkSerializer()


class BulkResultsOutput(serializers.Serializer):
    results = serializers.DictField(child=serializers.DictField(),
                                    help_text="id -> the object, or {requestId, errors}")


class DeleteOutput(serializers.Serializer):
    status = serializers.BooleanField()
    message = serializers.CharField()
