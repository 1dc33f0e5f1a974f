"""`/data/core/ups/config/destinations`: destinations (list, create, get, PATCH, delete), their
activations, and their delivery history with dead-letter replay. Thin: validate -> one service
call -> JSON, with the paging and error conventions of the segment definitions API."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.api.common import clean_param, next_href, paginate
from audiences.api.serializers.definitions import DeleteOutput
from audiences.api.serializers.destinations import (
    ActivationInput,
    ActivationListOutput,
    ActivationOutput,
    ActivationPatchInput,
    DeliveryListOutput,
    DestinationInput,
    DestinationListOutput,
    DestinationOutput,
    DestinationPatchInput,
    ReplayInput,
    ReplayOutput,
    activation_json,
    delivery_json,
    destination_fields,
    destination_json,
)
from audiences.models import Delivery, Destination
from audiences.services import destinations as service
from audiences.services.definitions import definition_get
from portal.errors import ErrorCode, SiftError
from portal.permissions import AdminWritePermission

PATH = "/data/core/ups/config/destinations"
TAG = ["Destinations"]
ERRORS = {400: OpenApiResponse(description="Invalid request (the error body names the field)"),
          403: OpenApiResponse(description="Viewers may not write"),
          404: OpenApiResponse(description="Not found in this organization and sandbox")}
PAGING = [OpenApiParameter("start", int, description="Offset of the first item"),
          OpenApiParameter("limit", int, description="Page size (at most 100)")]


def _page_json(page) -> dict:
    return {"totalCount": page.total, "totalPages": page.total_pages,
            "pageSize": len(page.items), "limit": page.limit}


def _choice_param(params, name: str, choices) -> str | None:
    value = clean_param(params, name)
    if value and value not in choices:
        raise SiftError(ErrorCode.INVALID, f"Query parameter {name!r} must be one of "
                                           f"{', '.join(choices)}.", {"parameter": name})
    return value or None


class DestinationListApi(APIView):
    @extend_schema(tags=TAG, operation_id="destinations_list",
                   summary="List destinations", responses={200: DestinationListOutput,
                                                                     **ERRORS},
                   parameters=[*PAGING,
                               OpenApiParameter("kind", str, enum=Destination.Kind.values),
                               OpenApiParameter("name", str, description="Name contains")])
    def get(self, request):
        params = request.query_params
        destinations = Destination.objects.order_by("name", "pk")
        kind = _choice_param(params, "kind", Destination.Kind.values)
        if kind:
            destinations = destinations.filter(kind=kind)
        name = clean_param(params, "name")
        if name:
            destinations = destinations.filter(name__icontains=name)
        page = paginate(destinations, params)
        href = next_href(PATH, params, page)
        return Response({"destinations": [destination_json(d) for d in page.items],
                         "page": _page_json(page), "link": {"next": href} if href else {}})

    @extend_schema(tags=TAG, operation_id="destinations_create",
                   summary="Create a destination", request=DestinationInput,
                   responses={201: DestinationOutput, **ERRORS})
    def post(self, request):
        body = DestinationInput(data=request.data)
        body.is_valid(raise_exception=True)
        fields = destination_fields(body.validated_data)
        destination = service.destination_create(**fields, kind=body.validated_data["kind"],
                                                 user=request.user, now=timezone.now())
        response = Response(destination_json(destination), status=201)
        response["X-Location"] = f"{PATH}/{destination.pk}"
        return response


class DestinationDetailApi(APIView):
    @extend_schema(tags=TAG, operation_id="destinations_get",
                   summary="Get a destination with its delivery counts",
                   responses={200: DestinationOutput, **ERRORS})
    def get(self, request, destination_id: str):
        destination = service.destination_get(destination_id=destination_id)
        return Response(destination_json(
            destination, counts=service.delivery_counts(destination=destination)))

    @extend_schema(tags=TAG, operation_id="destinations_patch",
                   summary="Change a destination (or rotate its secret)",
                   request=DestinationPatchInput, responses={200: DestinationOutput, **ERRORS})
    def patch(self, request, destination_id: str):
        destination = service.destination_get(destination_id=destination_id)
        body = DestinationPatchInput(data=request.data)
        body.is_valid(raise_exception=True)
        destination = service.destination_update(
            destination=destination, changes=destination_fields(body.validated_data),
            rotate_secret=body.validated_data["rotateSecret"], now=timezone.now())
        return Response(destination_json(destination))

    @extend_schema(tags=TAG, operation_id="destinations_delete",
                   summary="Delete a destination, its activations and history",
                   responses={200: DeleteOutput, **ERRORS})
    def delete(self, request, destination_id: str):
        service.destination_delete(
            destination=service.destination_get(destination_id=destination_id))
        return Response({"status": True, "message": f"Destination {destination_id} deleted."})


class ActivationListApi(APIView):
    @extend_schema(tags=TAG, operation_id="destination_activations_list",
                   summary="List the audiences activated to a destination",
                   parameters=PAGING, responses={200: ActivationListOutput, **ERRORS})
    def get(self, request, destination_id: str):
        destination = service.destination_get(destination_id=destination_id)
        page = paginate(destination.activations.select_related("definition").order_by("pk"),
                        request.query_params)
        href = next_href(f"{PATH}/{destination_id}/activations", request.query_params, page)
        return Response({"activations": [activation_json(a) for a in page.items],
                         "page": _page_json(page), "link": {"next": href} if href else {}})

    @extend_schema(tags=TAG, operation_id="destination_activations_create",
                   summary="Activate an audience (or change what it sends)",
                   request=ActivationInput, responses={200: ActivationOutput, **ERRORS})
    def post(self, request, destination_id: str):
        destination = service.destination_get(destination_id=destination_id)
        body = ActivationInput(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        activation = service.activation_set(
            destination=destination, definition=definition_get(definition_id=data["audienceId"]),
            namespace=data["namespace"], attributes=data["attributes"], user=request.user,
            now=timezone.now())
        return Response(activation_json(activation))


class ActivationDetailApi(APIView):
    @extend_schema(tags=TAG, operation_id="destination_activations_get",
                   summary="Get an activation",
                   responses={200: ActivationOutput, **ERRORS})
    def get(self, request, destination_id: str, activation_id: str):
        destination = service.destination_get(destination_id=destination_id)
        return Response(activation_json(service.activation_get(
            destination=destination, activation_id=activation_id)))

    @extend_schema(tags=TAG, operation_id="destination_activations_patch",
                   summary="Change the namespace or attributes sent",
                   request=ActivationPatchInput, responses={200: ActivationOutput, **ERRORS})
    def patch(self, request, destination_id: str, activation_id: str):
        destination = service.destination_get(destination_id=destination_id)
        activation = service.activation_get(destination=destination, activation_id=activation_id)
        body = ActivationPatchInput(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        activation = service.activation_set(
            destination=destination, definition=activation.definition,
            namespace=data.get("namespace", activation.namespace),
            attributes=data.get("attributes", activation.attributes), user=request.user,
            now=timezone.now())
        return Response(activation_json(activation))

    @extend_schema(tags=TAG, operation_id="destination_activations_delete",
                   summary="Deactivate an audience",
                   responses={200: DeleteOutput, **ERRORS})
    def delete(self, request, destination_id: str, activation_id: str):
        destination = service.destination_get(destination_id=destination_id)
        service.activation_delete(activation=service.activation_get(
            destination=destination, activation_id=activation_id))
        return Response({"status": True, "message": f"Activation {activation_id} deleted."})


class DeliveryListApi(APIView):
    @extend_schema(tags=TAG, operation_id="destination_deliveries_list",
                   summary="Delivery history (newest first)",
                   parameters=[*PAGING, OpenApiParameter("status", str,
                                                         enum=Delivery.Status.values)],
                   responses={200: DeliveryListOutput, **ERRORS})
    def get(self, request, destination_id: str):
        destination = service.destination_get(destination_id=destination_id)
        deliveries = destination.deliveries.order_by("-pk")
        status = _choice_param(request.query_params, "status", Delivery.Status.values)
        if status:
            deliveries = deliveries.filter(status=status)
        page = paginate(deliveries, request.query_params)
        href = next_href(f"{PATH}/{destination_id}/deliveries", request.query_params, page)
        return Response({"deliveries": [delivery_json(d) for d in page.items],
                         "page": _page_json(page), "link": {"next": href} if href else {}})


class DeliveryReplayApi(APIView):
    permission_classes = [AdminWritePermission]

    @extend_schema(tags=TAG, operation_id="destination_deliveries_replay",
                   summary="Replay dead-letter deliveries (administrators)",
                   request=ReplayInput, responses={200: ReplayOutput, **ERRORS})
    def post(self, request, destination_id: str):
        destination = service.destination_get(destination_id=destination_id)
        body = ReplayInput(data=request.data)
        body.is_valid(raise_exception=True)
        replayed = service.delivery_replay(destination=destination,
                                           delivery_ids=body.validated_data.get("ids"),
                                           now=timezone.now())
        return Response({"replayed": replayed})
