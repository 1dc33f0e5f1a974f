"""One error vocabulary for services, and one JSON shape for every API error.

Services raise `SiftError(code, message, details)`. The API's exception handler turns it (and
DRF's own exceptions) into a single body that satisfies each style Adobe's clients parse:

    {
      "type": "https://ns.sift.dev/errors/<code>",   # RFC 7807
      "title": "Not Found", "status": 404, "detail": "<message>",
      "requestId": "<uuid>",
      "errors": {"404": [{"code": "<code>", "message": "<message>"}]},   # Segmentation Service
      "error_code": "<code>", "message": "<message>",                    # API gateway
      "report": {...details}                                             # when there are details
    }

Codes are stable strings (`ErrorCode`); tests, UI and clients assert on codes, not wording.
"""

from __future__ import annotations

import logging
import uuid
from enum import StrEnum
from http import HTTPStatus
from typing import Any

from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

log = logging.getLogger(__name__)


class ErrorCode(StrEnum):
    # Authentication and tenancy (gateway-style numeric codes, as Adobe's clients parse them).
    TOKEN_MISSING = "401010"
    TOKEN_INVALID = "401013"
    ORG_FORBIDDEN = "403025"
    ROLE_FORBIDDEN = "403030"
    SANDBOX_NOT_FOUND = "404010"
    # Generic
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    ALREADY_EXISTS = "already_exists"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    SERVER_ERROR = "server_error"
    # Segmentation
    PQL_SYNTAX = "pql_syntax_error"
    UNKNOWN_MERGE_POLICY = "unknown_merge_policy"
    UNKNOWN_SEGMENT = "unknown_segment_reference"
    SEGMENT_CYCLE = "segment_cycle"
    HAS_DEPENDENTS = "has_dependents"
    HAS_ACTIVATIONS = "has_activations"
    LIMIT_EXCEEDED = "limit_exceeded"
    # Profiles and ingestion
    DEFAULT_MERGE_POLICY = "default_merge_policy"
    MERGE_POLICY_IN_USE = "merge_policy_in_use"
    ACTIVE_ON_EDGE = "merge_policy_active_on_edge"
    INVALID_RECORD = "invalid_record"
    IDENTITY_GRAPH_TOO_LARGE = "identity_graph_too_large"
    JOB_NOT_CANCELLABLE = "job_not_cancellable"
    # Segment definitions and audiences
    SEGMENT_INACTIVE = "segment_reference_inactive"
    INVALID_LIFECYCLE = "invalid_lifecycle_state"
    IMMUTABLE_FIELD = "immutable_field"
    BULK_IDS_INVALID = "bulk_ids_invalid"
    BULK_NONE_FOUND = "bulk_none_found"
    UNSUPPORTED_EXPRESSION = "unsupported_expression"


DEFAULT_STATUS = {
    ErrorCode.TOKEN_MISSING: 401,
    ErrorCode.TOKEN_INVALID: 401,
    ErrorCode.ORG_FORBIDDEN: 403,
    ErrorCode.ROLE_FORBIDDEN: 403,
    ErrorCode.SANDBOX_NOT_FOUND: 404,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.ALREADY_EXISTS: 422,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.SERVER_ERROR: 500,
    ErrorCode.UNKNOWN_MERGE_POLICY: 400,
    ErrorCode.UNKNOWN_SEGMENT: 400,
    ErrorCode.SEGMENT_CYCLE: 400,
    ErrorCode.HAS_DEPENDENTS: 400,
    ErrorCode.HAS_ACTIVATIONS: 400,
    ErrorCode.DEFAULT_MERGE_POLICY: 409,
    ErrorCode.MERGE_POLICY_IN_USE: 409,
    ErrorCode.ACTIVE_ON_EDGE: 409,
    ErrorCode.IDENTITY_GRAPH_TOO_LARGE: 422,
    ErrorCode.JOB_NOT_CANCELLABLE: 409,
    ErrorCode.SEGMENT_INACTIVE: 400,
    ErrorCode.INVALID_LIFECYCLE: 400,
    ErrorCode.IMMUTABLE_FIELD: 400,
    ErrorCode.BULK_IDS_INVALID: 400,
    ErrorCode.BULK_NONE_FOUND: 404,
    ErrorCode.UNSUPPORTED_EXPRESSION: 400,
}


class SiftError(Exception):
    """A business-rule failure a caller can act on."""

    def __init__(self, code: ErrorCode, message: str, details: dict[str, Any] | None = None,
                 *, status: int | None = None) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        self.details = details or {}
        self.status = status or DEFAULT_STATUS.get(self.code, 400)

    def __str__(self) -> str:
        return self.message


def error_body(*, status: int, code: str, message: str, details: dict | None = None,
               request_id: str | None = None) -> dict[str, Any]:
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {
        "type": f"https://ns.sift.dev/errors/{code}",
        "title": title,
        "status": status,
        "detail": message,
        "requestId": request_id or str(uuid.uuid4()),
        "errors": {str(status): [{"code": code, "message": message}]},
        "error_code": code,
        "message": message,
    }
    if details:
        body["report"] = details
    return body


def error_response(error: SiftError, *, request_id: str | None = None) -> Response:
    body = error_body(status=error.status, code=error.code, message=error.message,
                      details=error.details, request_id=request_id)
    return Response(body, status=error.status)


def json_error(*, status: int, code: str, message: str, details: dict | None = None
               ) -> JsonResponse:
    """The same body for plain Django views (health, 404 handler for /data/...)."""
    return JsonResponse(error_body(status=status, code=code, message=message, details=details),
                        status=status)


def _flatten_validation(detail: Any, prefix: str = "") -> list[str]:
    if isinstance(detail, dict):
        out: list[str] = []
        for key, value in detail.items():
            path = key if not prefix else f"{prefix}.{key}"
            out.extend(_flatten_validation(value, "" if key == "non_field_errors" else path))
        return out
    if isinstance(detail, list):
        out = []
        for index, value in enumerate(detail):
            if isinstance(value, dict):
                out.extend(_flatten_validation(value, f"{prefix}[{index}]"))
            else:
                out.extend(_flatten_validation(value, prefix))
        return out
    return [f"{prefix}: {detail}" if prefix else str(detail)]


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF exception handler: every error leaves the API in the one shape above."""
    request = context.get("request")
    request_id = request.headers.get("x-request-id") if request is not None else None
    if isinstance(exc, SiftError):
        return error_response(exc, request_id=request_id)
    if isinstance(exc, Http404):
        return error_response(SiftError(ErrorCode.NOT_FOUND, str(exc) or "Not found."),
                              request_id=request_id)
    if isinstance(exc, drf_exceptions.ValidationError):
        messages = _flatten_validation(exc.detail)
        return error_response(
            SiftError(ErrorCode.INVALID, "; ".join(messages) or "Invalid request.",
                      {"fields": exc.detail}),
            request_id=request_id,
        )
    if isinstance(exc, drf_exceptions.NotAuthenticated):
        return error_response(
            SiftError(ErrorCode.TOKEN_MISSING, "Oauth token is missing.", status=401),
            request_id=request_id,
        )
    if isinstance(exc, drf_exceptions.AuthenticationFailed):
        code = getattr(exc, "sift_code", ErrorCode.TOKEN_INVALID)
        return error_response(SiftError(code, str(exc.detail), status=401),
                              request_id=request_id)
    if isinstance(exc, drf_exceptions.PermissionDenied):
        code = getattr(exc, "sift_code", ErrorCode.ROLE_FORBIDDEN)
        return error_response(SiftError(code, str(exc.detail), status=403),
                              request_id=request_id)
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        return error_response(SiftError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, str(exc.detail)),
                              request_id=request_id)
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return error_response(SiftError(ErrorCode.METHOD_NOT_ALLOWED, str(exc.detail)),
                              request_id=request_id)
    if isinstance(exc, drf_exceptions.APIException):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else "invalid"
        return error_response(
            SiftError(ErrorCode.INVALID if exc.status_code == 400 else ErrorCode.SERVER_ERROR,
                      str(exc.detail), status=exc.status_code, details={"reason": code}),
            request_id=request_id,
        )
    log.exception("Unhandled API error", exc_info=exc)
    return error_response(
        SiftError(ErrorCode.SERVER_ERROR, "Internal server error.", status=500),
        request_id=request_id,
    )
