"""Streaming ingestion, as Adobe's Data Collection Core Service (DCCS) answers it:
`POST /collection/{inletId}` (one message) and `POST /collection/batch/{inletId}` (many).

1. The inlet id names a streaming connection, hence the organization and sandbox. Inlets that
   require authentication want `Authorization: Bearer <token>` of that organization (401 when
   missing, 403 when not valid), as DCCS documents; the others need no header.
2. A request body over `SIFT_STREAMING_MAX_REQUEST_BYTES` (1 MB) is refused with 413.
3. Each message is checked as DCCS does (shared/aep-reference.md Part B §1.5): `header` and
   `body.xdmEntity` present, `header.imsOrgId` equal to the inlet's organization (filled in when
   absent), `header.datasetId` an existing dataset of the sandbox whose schema equals
   `header.schemaRef.id`. Then the XDM record is validated and stored by `ingest_records`.
4. Single message: 200 with `xactionId`. With `syncValidation=true` (or
   `synchronousValidation=true`) an invalid record is answered 400 with the validation report;
   without it the record is rejected asynchronously, as in AEP: the request answers 200 and the
   rejection is kept on the ingestion batch (the "failed batch") the Datasets page lists.
5. Batch: always 207, one response per message in request order; a message that fails (either
   check) gets `{"statusCode": 400, "message": …}`, the others are kept.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import defaultdict
from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.models import Dataset, StreamingConnection
from audiences.services.datasets import inlet_find
from audiences.services.ingest import accepts_data, ingest_records
from portal.models import ApiToken, hash_token
from portal.scope import sandbox_scope

TAG = ["Streaming ingestion"]
PROBLEM = "http://ns.adobe.com/adobecloud/problem/data-collection-service/inlet"
AUTH_PROBLEM = "https://ns.adobe.com/adobecloud/problem/data-collection-service-authorization"
UNKNOWN_FORMAT = "Message has unknown xdm format"
WRONG_ORG = "Message has an absent or wrong ims org in the header"
_sequence = itertools.count(1)


class MessageRejected(ValueError):
    """A message fails a DCCS check; the text is the end of the DCCS message."""


def _problem(status: int, title: str, message: str, *, kind: str = PROBLEM,
             cause: dict | None = None) -> Response:
    report: dict[str, Any] = {"message": message}
    if cause:
        report["cause"] = cause
    return Response({"type": kind, "status": status, "title": title, "report": report},
                    status=status)


def _prefix(connection: StreamingConnection | None, inlet_id: str) -> str:
    org = connection.sandbox.organization.ims_org_id if connection else ""
    return f"inletId: [{inlet_id[:64]}] imsOrgId: [{org}]"


def _received() -> tuple[int, str]:
    received_ms = int(timezone.now().timestamp() * 1000)
    return received_ms, f"{received_ms}:{os.getpid() % 10000}:{next(_sequence)}"


def _envelope(message: Any, connection: StreamingConnection, datasets: dict[str, Dataset]
              ) -> tuple[Dataset, Any]:
    """(dataset, xdmEntity) of one message, or `MessageRejected`."""
    if not isinstance(message, dict):
        raise MessageRejected(UNKNOWN_FORMAT)
    header, body = message.get("header"), message.get("body")
    if not isinstance(header, dict) or not isinstance(body, dict) or "xdmEntity" not in body:
        raise MessageRejected(UNKNOWN_FORMAT)
    org = header.get("imsOrgId")
    if org is not None and org != connection.sandbox.organization.ims_org_id:
        raise MessageRejected(WRONG_ORG)
    dataset_id = header.get("datasetId")
    dataset = datasets.get(dataset_id) if isinstance(dataset_id, str) else None
    if dataset is None:
        raise MessageRejected(f"{UNKNOWN_FORMAT}: datasetId {str(dataset_id)[:64]!r} is not a "
                              "dataset of this sandbox")
    schema = header.get("schemaRef")
    schema_id = schema.get("id") if isinstance(schema, dict) else None
    expected = (dataset.schema_ref or {}).get("id")
    if expected and schema_id != expected:
        raise MessageRejected(f"{UNKNOWN_FORMAT}: header.schemaRef.id does not match the schema "
                              f"of dataset {dataset.pk}")
    if not accepts_data(dataset):
        raise MessageRejected(f"Dataset {dataset.pk} is not enabled for Profile")
    return dataset, body["xdmEntity"]


def _datasets(messages: list) -> dict[str, Dataset]:
    ids = {m["header"].get("datasetId") for m in messages
           if isinstance(m, dict) and isinstance(m.get("header"), dict)}
    ids = [i for i in ids if isinstance(i, str) and "\x00" not in i]
    return {d.pk: d for d in Dataset.objects.filter(pk__in=ids)}


def _violation(reason: str) -> dict:
    """The everit-json-schema style report DCCS answers with."""
    return {"_streamingValidation": [{
        "schemaLocation": "#", "pointerToViolation": "#",
        "causingExceptions": [{"schemaLocation": "#", "pointerToViolation": "#",
                               "causingExceptions": [], "keyword": "validation",
                               "message": reason}],
        "message": "1 schema violations found"}]}


class _CollectionApi(APIView):
    """Shared plumbing: the inlet, its authentication, the size limit, the JSON body."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def _open(self, request, inlet_id: str) -> tuple[StreamingConnection | None, Any, Response
                                                      | None]:
        connection = inlet_find(inlet_id=inlet_id)
        if connection is None:
            return None, None, _problem(404, "Not Found", f"inletId: [{inlet_id[:64]}] "
                                                          "Inlet not found")
        if connection.authentication_required:
            refused = self._authenticate(request, connection)
            if refused is not None:
                return connection, None, refused
        limit = settings.SIFT_STREAMING_MAX_REQUEST_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit or len(request.body) > limit:
            return connection, None, _problem(
                413, "Payload Too Large", f"{_prefix(connection, inlet_id)} Request body is "
                                          f"larger than {limit} bytes")
        try:
            payload = json.loads(request.body or b"null")
        except (ValueError, UnicodeDecodeError):
            return connection, None, _problem(400, "Bad Request",
                                              f"{_prefix(connection, inlet_id)} "
                                              "Request body is not valid JSON")
        return connection, payload, None

    @staticmethod
    def _authenticate(request, connection: StreamingConnection) -> Response | None:
        header = request.headers.get("Authorization", "")
        if not header:
            return _problem(401, "Authorization", "[id] Ims service token is empty",
                            kind=AUTH_PROBLEM)
        scheme, _, raw = header.partition(" ")
        token = (ApiToken.objects.filter(token_hash=hash_token(raw.strip()),
                                         revoked_at__isnull=True,
                                         organization=connection.sandbox.organization).first()
                 if scheme.lower() == "bearer" and raw.strip() else None)
        if token is None:
            return _problem(403, "Authorization", "[id] Ims service token is not valid",
                            kind=AUTH_PROBLEM)
        return None


def _sync_requested(request) -> str | None:
    """The response key for synchronous validation, spelled as the caller spelled the flag."""
    for key in ("syncValidation", "synchronousValidation"):
        if request.query_params.get(key, "").lower() == "true":
            return key
    return None


class CollectionApi(_CollectionApi):
    @extend_schema(tags=TAG, summary="Send one XDM message to a streaming inlet", auth=[],
                   parameters=[OpenApiParameter("syncValidation", bool),
                               OpenApiParameter("synchronousValidation", bool)],
                   request=OpenApiTypes.OBJECT,
                   responses={200: OpenApiTypes.OBJECT,
                              400: OpenApiResponse(description="Invalid message"),
                              401: OpenApiResponse(description="Token missing (authenticated "
                                                               "inlets)"),
                              403: OpenApiResponse(description="Token not valid"),
                              404: OpenApiResponse(description="Unknown inlet"),
                              413: OpenApiResponse(description="Body over 1 MB")})
    def post(self, request, inlet_id: str):
        connection, message, refused = self._open(request, inlet_id)
        if refused is not None:
            return refused
        sync = _sync_requested(request)
        received_ms, xaction = _received()
        prefix = _prefix(connection, inlet_id)
        with sandbox_scope(connection.sandbox):
            try:
                dataset, entity = _envelope(message, connection, _datasets([message]))
            except MessageRejected as error:
                return _problem(400, "Bad Request", f"{prefix} {error}")
            result = ingest_records(dataset=dataset, records=[entity], now=timezone.now(),
                                    source="streaming", connection=connection)
        if result.rejected and sync:
            return _problem(400, "Invalid XDM Message Format", f"{prefix} Message is invalid",
                            cause=_violation(result.rejected[0][1]))
        validation = {"status": "pass"} if sync else {"skipped": True}
        return Response({"inletId": connection.inlet_id, "xactionId": xaction,
                         "receivedTimeMs": received_ms, sync or "syncValidation": validation})


class CollectionBatchApi(_CollectionApi):
    @extend_schema(tags=TAG, summary="Send many XDM messages to a streaming inlet (always 207)",
                   auth=[], request=OpenApiTypes.OBJECT,
                   responses={207: OpenApiTypes.OBJECT,
                              400: OpenApiResponse(description="Body is not a messages object"),
                              401: OpenApiResponse(description="Token missing"),
                              403: OpenApiResponse(description="Token not valid"),
                              404: OpenApiResponse(description="Unknown inlet"),
                              413: OpenApiResponse(description="Body over 1 MB")})
    def post(self, request, inlet_id: str):
        connection, payload, refused = self._open(request, inlet_id)
        if refused is not None:
            return refused
        prefix = _prefix(connection, inlet_id)
        messages = payload.get("messages") if isinstance(payload, dict) else None
        if not isinstance(messages, list):
            return _problem(400, "Bad Request", f"{prefix} The body must be "
                                                '{"messages": [...]}')
        received_ms, batch_id = _received()
        responses: list[dict | None] = [None] * len(messages)
        with sandbox_scope(connection.sandbox):
            datasets = _datasets(messages)
            by_dataset: dict[str, list[tuple[int, Any]]] = defaultdict(list)
            for index, message in enumerate(messages):
                try:
                    dataset, entity = _envelope(message, connection, datasets)
                except MessageRejected as error:
                    responses[index] = {"statusCode": 400, "message": f"{prefix} {error}"}
                    continue
                by_dataset[dataset.pk].append((index, entity))
            now = timezone.now()
            for dataset_id, items in by_dataset.items():
                result = ingest_records(dataset=datasets[dataset_id],
                                        records=[entity for _, entity in items], now=now,
                                        source="streaming", connection=connection)
                for position, reason in result.rejected:
                    responses[items[position][0]] = {"statusCode": 400,
                                                     "message": f"{prefix} {reason}"}
        out = [response or {"xactionId": f"{batch_id}:{index}"}
               for index, response in enumerate(responses)]
        return Response({"inletId": connection.inlet_id, "batchId": batch_id,
                         "receivedTimeMs": received_ms, "responses": out}, status=207)
