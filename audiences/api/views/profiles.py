"""Profile Access, `/data/core/ups/access/entities`: merged profiles and their events by identity.

Decisions where Adobe's docs leave a gap (shared/aep-reference.md Part B §5.5):
- Merged-profile ids are the XID of the graph's representative identity; an XID is URL-safe
  base64 of `namespace NUL value`, so `entityId` may be an XID instead of id + namespace.
- An unknown identity answers `200 {}` on GET, and a placeholder entry on POST (as Adobe's POST).
- A graph over the identity limit answers 422 "Too many related identities".
- Without `mergePolicyId` the sandbox's default policy is used.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.api.common import clean_param, epoch_ms, int_param, no_nul
from audiences.models import EVENT_CLASS, PROFILE_CLASS, Event, MergePolicy
from audiences.services.profiles import (
    ProfileView,
    identity_xid,
    merge_policy_or_default,
    profile_lookup,
    profile_xid,
    xid_identity,
)
from portal.errors import ErrorCode, SiftError

TAG = ["Profile access"]
DEFAULT_EVENT_LIMIT = 1000
EPOCH = "1970-01-01T00:00:00Z"
ERRORS = {400: OpenApiResponse(description="Missing or invalid parameter"),
          422: OpenApiResponse(description="Too many related identities")}
PARAMETERS = [
    OpenApiParameter("schema.name", str, required=True,
                     description="_xdm.context.profile or _xdm.context.experienceevent"),
    OpenApiParameter("entityId", str, description="Identity value, or an XID"),
    OpenApiParameter("entityIdNS", str, description="Namespace code of entityId"),
    OpenApiParameter("relatedSchema.name", str, description="_xdm.context.profile (events)"),
    OpenApiParameter("relatedEntityId", str), OpenApiParameter("relatedEntityIdNS", str),
    OpenApiParameter("mergePolicyId", str), OpenApiParameter("fields", str),
    OpenApiParameter("orderby", str, description="+timestamp (default) or -timestamp"),
    OpenApiParameter("startTime", int, description="epoch ms, inclusive"),
    OpenApiParameter("endTime", int, description="epoch ms, exclusive"),
    OpenApiParameter("limit", int, description="Events per page (default 1000)"),
    OpenApiParameter("start", str, description="Paging cursor: the first event id"),
]


def _iso(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if at else EPOCH


def _param(params, *names: str) -> str | None:
    """The first of `names` present, matched without case (docs spell entityIdNS 3 ways)."""
    lowered = {key.lower(): key for key in params}
    for name in names:
        key = lowered.get(name.lower())
        if key is not None:
            return clean_param(params, key)
    return None


def _identity(entity_id: str | None, namespace: str | None, what: str) -> tuple[str, str]:
    if not entity_id:
        raise SiftError(ErrorCode.INVALID, f"{what} is required.", {"parameter": what})
    if namespace:
        return namespace, entity_id
    decoded = xid_identity(entity_id)
    if decoded is None:
        raise SiftError(ErrorCode.INVALID, f"{what}NS is required unless {what} is an XID.",
                        {"parameter": f"{what}NS"})
    return decoded


def _policy(merge_policy_id: str | None) -> MergePolicy:
    return merge_policy_or_default(merge_policy_id or None)


def _pick(document: dict, fields: list[str] | None) -> dict:
    """Only the requested dotted paths (`fields=person.name,workEmail`)."""
    if not fields:
        return document
    out: dict = {}
    for path in fields:
        source, target, parts = document, out, path.split(".")
        for position, part in enumerate(parts):
            if not isinstance(source, dict) or part not in source:
                break
            if position == len(parts) - 1:
                target[part] = source[part]
            else:
                source = source[part]
                target = target.setdefault(part, {})
    return out


def profile_entry(view: ProfileView, fields: list[str] | None) -> dict[str, Any]:
    profile = view.profile
    entity = dict(profile.attributes or {})
    entity["identityMap"] = profile.identity_map or {}
    if view.memberships:
        entity["segmentMembership"] = {"ups": {
            str(m.definition_id): {"status": m.status,
                                   "lastQualificationTime": _iso(m.last_qualification_time)}
            for m in view.memberships}}
    picked = _pick(entity, [f for f in fields or [] if f != "identities"] or None)
    if fields and "identities" in fields:
        picked["identities"] = [{"id": i.value, "namespace": {"code": i.namespace},
                                 "primary": (i.namespace, i.value) == (
                                     profile.primary_namespace, profile.primary_id)}
                                for i in view.identities]
    xid = profile_xid(view)
    return {"entityId": xid, "mergePolicy": {"id": str(view.merge_policy.pk)},
            "sources": sorted({f.dataset_id for f in view.fragments}),
            "tags": [], "identityGraph": [identity_xid(i.namespace, i.value)
                                          for i in view.identities],
            "entity": picked, "lastModifiedAt": _iso(profile.updated_at)}


def _fields(value: Any) -> list[str] | None:
    if value in (None, ""):
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(f, str) for f in items):
        raise SiftError(ErrorCode.INVALID, "fields must be a comma-separated list of paths.",
                        {"parameter": "fields"})
    return [f.strip() for f in items if f.strip()]


def _epoch(value: Any, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise SiftError(ErrorCode.INVALID, f"{name} must be epoch milliseconds.",
                        {"parameter": name}) from None


def events_page(*, view: ProfileView, start: str | None, limit: int, descending: bool,
                start_time: datetime | None, end_time: datetime | None,
                fields: list[str] | None) -> tuple[list[dict], str]:
    """One page of a profile's events and the id of the next page's first event ("" at end)."""
    policy = view.merge_policy
    key = "cluster_id" if policy.stitches else "identity_id"
    events = Event.objects.filter(**{key: view.profile.entity_id})
    if policy.event_datasets:
        events = events.filter(dataset_id__in=policy.event_datasets)
    if start_time:
        events = events.filter(timestamp__gte=start_time)
    if end_time:
        events = events.filter(timestamp__lt=end_time)
    order = ("-timestamp", "-pk") if descending else ("timestamp", "pk")
    if start:
        cursor = events.filter(event_id=start).values_list("timestamp", "pk").first()
        if cursor is None:
            raise SiftError(ErrorCode.INVALID, "start is not an event of this profile.",
                            {"parameter": "start"})
        at, pk = cursor
        events = (events.filter(timestamp__lt=at) | events.filter(timestamp=at, pk__lte=pk)
                  if descending else
                  events.filter(timestamp__gt=at) | events.filter(timestamp=at, pk__gte=pk))
    rows = list(events.order_by(*order)[:limit + 1])
    related = profile_xid(view)
    children = [{"relatedEntityId": related, "entityId": e.event_id,
                 "timestamp": epoch_ms(e.timestamp), "entity": _pick(e.payload, fields),
                 "lastModifiedAt": _iso(e.ingested_at)} for e in rows[:limit]]
    return children, rows[limit].event_id if len(rows) > limit else ""


def _schema(name: str | None) -> str:
    if name not in (PROFILE_CLASS, EVENT_CLASS):
        raise SiftError(ErrorCode.INVALID, f"schema.name must be {PROFILE_CLASS} or "
                                           f"{EVENT_CLASS}.", {"parameter": "schema.name"})
    return name


class EntitiesApi(APIView):
    @extend_schema(tags=TAG, summary="A merged profile, or its events, by identity",
                   parameters=PARAMETERS, responses={200: OpenApiTypes.OBJECT, **ERRORS})
    def get(self, request):
        params = request.query_params
        schema = _schema(_param(params, "schema.name"))
        policy = _policy(_param(params, "mergePolicyId", "mergePoilcyId"))
        fields = _fields(_param(params, "fields"))
        if schema == PROFILE_CLASS:
            namespace, value = _identity(_param(params, "entityId"),
                                         _param(params, "entityIdNS", "entityIdNE"), "entityId")
            view = profile_lookup(namespace=namespace, value=value, merge_policy=policy)
            if view is None:
                return Response({})
            entry = profile_entry(view, fields)
            return Response({entry["entityId"]: entry})
        if _param(params, "relatedSchema.name") != PROFILE_CLASS:
            raise SiftError(ErrorCode.INVALID, f"relatedSchema.name must be {PROFILE_CLASS}.",
                            {"parameter": "relatedSchema.name"})
        namespace, value = _identity(_param(params, "relatedEntityId"),
                                     _param(params, "relatedEntityIdNS"), "relatedEntityId")
        orderby = _param(params, "orderby", "orderBy") or "+timestamp"
        if orderby.strip() not in ("timestamp", "+timestamp", "-timestamp"):
            raise SiftError(ErrorCode.INVALID, "orderby must be +timestamp or -timestamp.",
                            {"parameter": "orderby"})
        limit = int_param(params, "limit", default=DEFAULT_EVENT_LIMIT, minimum=1)
        view = profile_lookup(namespace=namespace, value=value, merge_policy=policy,
                              events_limit=0)
        start = _param(params, "start")
        if view is None:
            children, following = [], ""
        else:
            children, following = events_page(
                view=view, start=start, limit=min(limit, DEFAULT_EVENT_LIMIT),
                descending=orderby.strip() == "-timestamp",
                start_time=_epoch(_param(params, "startTime"), "startTime"),
                end_time=_epoch(_param(params, "endTime"), "endTime"), fields=fields)
        href = ""
        if following:
            query = {k: v for k, v in params.items() if k != "start"}
            href = "/entities?" + urlencode({"start": following, **query})
        return Response({"_page": {"orderby": orderby.strip().lstrip("+"),
                                   "start": children[0]["entityId"] if children else "",
                                   "count": len(children), "next": following},
                         "children": children, "_links": {"next": {"href": href}}})

    @extend_schema(tags=TAG, summary="Several merged profiles (or their events) by identity",
                   request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT, **ERRORS})
    def post(self, request):
        body = no_nul(request.data if isinstance(request.data, dict) else {}, "body")
        schema = _schema((body.get("schema") or {}).get("name")
                         if isinstance(body.get("schema"), dict) else None)
        identities = body.get("identities")
        if not isinstance(identities, list) or not 1 <= len(identities) <= 1000:
            raise SiftError(ErrorCode.INVALID, "identities must list 1 to 1000 identities.",
                            {"field": "identities"})
        merge_policy_id = body.get("mergePolicyId")
        policy = _policy(merge_policy_id if isinstance(merge_policy_id, str) else None)
        fields = _fields(body.get("fields"))
        out: dict[str, Any] = {}
        for position, item in enumerate(identities):
            if not isinstance(item, dict):
                raise SiftError(ErrorCode.INVALID, f"identities[{position}] must be an object.",
                                {"field": f"identities[{position}]"})
            prefix = "relatedEntityId" if schema == EVENT_CLASS else "entityId"
            ns = item.get(f"{prefix}NS")
            ns = ns.get("code") if isinstance(ns, dict) else ns
            entity_id = item.get(prefix)
            if not isinstance(entity_id, str) or (ns is not None and not isinstance(ns, str)):
                raise SiftError(ErrorCode.INVALID, f"identities[{position}].{prefix} must be "
                                                   "a string.",
                                {"field": f"identities[{position}]"})
            namespace, value = _identity(entity_id, ns, prefix)
            view = profile_lookup(namespace=namespace, value=value, merge_policy=policy,
                                  events_limit=0)
            if schema == PROFILE_CLASS:
                if view is None:
                    xid = identity_xid(namespace, value)
                    out[xid] = {"entityId": xid, "sources": [""], "entity": {},
                                "lastModifiedAt": EPOCH}
                else:
                    entry = profile_entry(view, fields)
                    out[entry["entityId"]] = entry
                continue
            limit = body.get("limit", DEFAULT_EVENT_LIMIT)
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
                raise SiftError(ErrorCode.INVALID, "limit must be a positive integer.",
                                {"field": "limit"})
            time_filter = body.get("timeFilter") if isinstance(body.get("timeFilter"),
                                                               dict) else {}
            children, following = ([], "") if view is None else events_page(
                view=view, start=item.get("start") if isinstance(item.get("start"), str)
                else None, limit=min(limit, DEFAULT_EVENT_LIMIT),
                descending=body.get("orderby") == "-timestamp",
                start_time=_epoch(time_filter.get("startTime"), "timeFilter.startTime"),
                end_time=_epoch(time_filter.get("endTime"), "timeFilter.endTime"),
                fields=fields)
            key = profile_xid(view) if view else identity_xid(namespace, value)
            next_body = {**body, "identities": [{**item, "start": following}]}
            out[key] = {"_page": {"orderby": "timestamp",
                                  "start": children[0]["entityId"] if children else "",
                                  "count": len(children), "next": following},
                        "children": children,
                        "_links": {"next": {"href": "/entities", "payload": next_body}
                                   if following else {"href": ""}}}
        return Response(out)
