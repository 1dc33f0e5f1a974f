"""The Sandbox Management API (`/data/foundation/sandbox-management/sandboxes`), Adobe's shape."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from portal import scope
from portal.models import Sandbox
from portal.permissions import AdminWritePermission
from portal.services import sandbox_create


def sandbox_to_aep(sandbox: Sandbox) -> dict:
    return {
        "id": str(sandbox.sandbox_id),
        "name": sandbox.name,
        "title": sandbox.title or sandbox.name,
        "state": "active",
        "type": sandbox.type,
        "isDefault": sandbox.is_default,
        "region": "local",
        "createdDate": sandbox.created_at.isoformat(),
        "lastModifiedDate": sandbox.created_at.isoformat(),
    }


class SandboxInput(serializers.Serializer):
    name = serializers.SlugField(max_length=100)
    title = serializers.CharField(max_length=200, required=False, allow_blank=True)
    type = serializers.ChoiceField(choices=Sandbox.Type.values, default=Sandbox.Type.DEVELOPMENT)


SANDBOX_LIST = inline_serializer("SandboxList", {"sandboxes": serializers.ListField(),
                                                 "_page": serializers.DictField()})


class SandboxListApi(APIView):
    permission_classes = [AdminWritePermission]

    @extend_schema(responses=SANDBOX_LIST, summary="List the organization's sandboxes")
    def get(self, request):
        org = scope.current_scope().organization
        items = [sandbox_to_aep(s) for s in Sandbox.objects.filter(organization=org)]
        return Response({"sandboxes": items, "_page": {"limit": len(items), "count": len(items)}})

    @extend_schema(request=SandboxInput, responses={201: dict}, summary="Create a sandbox")
    def post(self, request):
        data = SandboxInput(data=request.data)
        data.is_valid(raise_exception=True)
        sandbox, created = sandbox_create(
            ims_org_id=scope.current_scope().organization.ims_org_id,
            name=data.validated_data["name"], type=data.validated_data["type"],
            title=data.validated_data.get("title", ""))
        return Response(sandbox_to_aep(sandbox), status=201 if created else 200)


class SandboxDetailApi(APIView):
    @extend_schema(responses=dict, summary="Get a sandbox by name")
    def get(self, request, name: str):
        org = scope.current_scope().organization
        sandbox = Sandbox.objects.filter(organization=org, name=name).first()
        if sandbox is None:
            from portal.errors import ErrorCode, SiftError

            raise SiftError(ErrorCode.SANDBOX_NOT_FOUND, f"Sandbox {name!r} does not exist.",
                            status=404)
        return Response(sandbox_to_aep(sandbox))
