"""`POST /data/core/ups/edge/evaluate`: which edge audiences is this identity in, right now."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.services.edge import edge_evaluate


class IdentityInput(serializers.Serializer):
    namespace = serializers.CharField(max_length=100)
    id = serializers.CharField(max_length=1024)


class EdgeInput(serializers.Serializer):
    identity = IdentityInput()
    event = serializers.DictField(required=False, allow_null=True,
                                  help_text="An XDM ExperienceEvent to ingest and count.")
    datasetId = serializers.CharField(required=False, allow_blank=True,
                                      help_text="Event dataset for the event (default: the "
                                                "sandbox's Edge Network events dataset).")


EDGE_OUTPUT = inline_serializer("EdgeEvaluation", {
    "segments": serializers.ListField(child=serializers.DictField()),
    "profile": serializers.DictField(allow_null=True),
    "evaluated": serializers.IntegerField(),
    "eventId": serializers.CharField(allow_null=True),
})


class EdgeEvaluateApi(APIView):
    @extend_schema(tags=["Edge segmentation"], request=EdgeInput,
                   summary="Evaluate the edge audiences for one identity (and event)",
                   responses={200: EDGE_OUTPUT,
                              400: OpenApiResponse(description="Invalid identity or event"),
                              409: OpenApiResponse(description="No active-on-edge policy")})
    def post(self, request):
        body = EdgeInput(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        answer = edge_evaluate(namespace=data["identity"]["namespace"],
                               identity=data["identity"]["id"], event=data.get("event"),
                               now=timezone.now(), dataset_id=data.get("datasetId") or None)
        profile = answer.profile
        return Response({
            "segments": answer.segments,
            "profile": ({"entityId": str(profile.pk), "identityMap": profile.identity_map}
                        if profile is not None else None),
            "evaluated": answer.evaluated,
            "eventId": answer.event_id,
        })
