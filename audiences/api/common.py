"""What the AEP-shaped endpoints share: query-parameter parsing, paging, sorting, bulk ids."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.db.models import QuerySet
from rest_framework import serializers

from portal.errors import ErrorCode, SiftError

MAX_LIMIT = 100
MAX_BULK_IDS = 100


def epoch_ms(at: datetime | None) -> int:
    return int(at.timestamp() * 1000) if at else 0


def epoch_s(at: datetime | None) -> int:
    return int(at.timestamp()) if at else 0


def clean_param(params: Mapping[str, str], name: str) -> str | None:
    """A query parameter, refusing NUL characters (no database accepts them in text)."""
    value = params.get(name)
    if value is not None and "\x00" in value:
        raise SiftError(ErrorCode.INVALID, f"Query parameter {name!r} contains a NUL character.",
                        {"parameter": name})
    return value


def bool_param(params: Mapping[str, str], name: str) -> bool | None:
    value = clean_param(params, name)
    if value is None or value == "":
        return None
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise SiftError(ErrorCode.INVALID, f"Query parameter {name!r} must be true or false.",
                    {"parameter": name, "value": value})


def int_param(params: Mapping[str, str], name: str, *, default: int, minimum: int = 0) -> int:
    value = clean_param(params, name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise SiftError(ErrorCode.INVALID, f"Query parameter {name!r} must be an integer.",
                        {"parameter": name, "value": value}) from None
    if number < minimum:
        raise SiftError(ErrorCode.INVALID,
                        f"Query parameter {name!r} must be at least {minimum}.",
                        {"parameter": name, "value": value})
    return number


@dataclass(frozen=True)
class Sort:
    field: str  # the AEP attribute name, e.g. "updateTime"
    direction: str  # "asc" | "desc"
    order_by: tuple[str, ...]


def sort_param(params: Mapping[str, str], *, fields: Mapping[str, str], default: str) -> Sort:
    """`sort=attr:asc|desc[,attr2:dir]` mapped through `fields` (AEP name -> model field)."""
    raw = clean_param(params, "sort") or default
    order_by: list[str] = []
    first: tuple[str, str] | None = None
    for part in raw.split(","):
        name, _, direction = part.strip().partition(":")
        direction = (direction or "asc").strip().lower()
        if name not in fields or direction not in ("asc", "desc"):
            raise SiftError(
                ErrorCode.INVALID,
                f"sort must be attribute:asc|desc with attribute one of "
                f"{', '.join(sorted(fields))}; got {part.strip()!r}.", {"parameter": "sort"})
        first = first or (name, direction)
        order_by.append(("-" if direction == "desc" else "") + fields[name])
    order_by.append("-pk" if first and first[1] == "desc" else "pk")  # a stable total order
    assert first is not None
    return Sort(field=first[0], direction=first[1], order_by=tuple(order_by))


@dataclass(frozen=True)
class Page:
    items: list[Any]
    total: int
    start: int
    limit: int

    @property
    def total_pages(self) -> int:
        return (self.total + self.limit - 1) // self.limit if self.limit else 0

    @property
    def next_start(self) -> int:
        """The offset of the next page, 0 when this is the last one (clients loop while > 0)."""
        after = self.start + len(self.items)
        return after if after < self.total and self.items else 0


def paginate(queryset: QuerySet, params: Mapping[str, str], *, default_limit: int = MAX_LIMIT,
             allow_page: bool = False) -> Page:
    """Offset paging: `start` (offset), `limit` (clamped to 100), `page` (0-based, optional)."""
    limit = min(int_param(params, "limit", default=default_limit, minimum=1), MAX_LIMIT)
    start = int_param(params, "start", default=0)
    if allow_page:
        start += int_param(params, "page", default=0) * limit
    total = queryset.count()
    items = list(queryset[start:start + limit]) if start < total else []
    return Page(items=items, total=total, start=start, limit=limit)


def next_href(path: str, params: Mapping[str, str], page: Page, *, extra: Mapping | None = None
              ) -> str:
    if not page.next_start:
        return ""
    query = {k: v for k, v in params.items() if k not in ("start", "page", "limit")}
    query.update({"start": page.next_start, "limit": page.limit, **(extra or {})})
    return f"{path}?{urlencode(query)}"


# --- Bulk get -------------------------------------------------------------------------------------


class BulkIdSerializer(serializers.Serializer):
    id = serializers.CharField(max_length=255)


class BulkGetInput(serializers.Serializer):
    ids = BulkIdSerializer(many=True)

    def validate_ids(self, value):
        if not 1 <= len(value) <= MAX_BULK_IDS:
            raise SiftError(ErrorCode.BULK_IDS_INVALID,
                            f"The number of ids cannot be 0 or exceed {MAX_BULK_IDS}; "
                            f"got {len(value)}.", {"count": len(value)})
        return value


def bulk_results(*, ids: list[str], found: Mapping[str, Any], render, kind: str,
                 request_id: str) -> dict[str, Any]:
    """`{"results": {id: object | error}}`, or NOT_FOUND when none of the ids exist."""
    if not found:
        raise SiftError(ErrorCode.BULK_NONE_FOUND, f"None of the requested {kind}s were found.",
                        {"ids": ids})
    results: dict[str, Any] = {}
    for pk in ids:
        if pk in found:
            results[pk] = render(found[pk])
        else:
            message = f"The {kind} {pk} is not found. Use a valid entity and try again."
            results[pk] = {"requestId": request_id,
                           "errors": {"404": [{"code": str(ErrorCode.NOT_FOUND),
                                               "message": message}]}}
    return {"results": results}


def no_nul(value: Any, field: str) -> Any:
    """Reject NUL characters anywhere in a JSON value (PostgreSQL's jsonb refuses them)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise serializers.ValidationError(f"{field} contains a NUL character.")
    elif isinstance(value, dict):
        for key, item in value.items():
            no_nul(key, field)
            no_nul(item, field)
    elif isinstance(value, list):
        for item in value:
            no_nul(item, field)
    return value
