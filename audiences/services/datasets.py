"""Datasets (the catalog) and streaming connections (inlets).

A dataset's XDM class comes from its `schemaRef.id`:
1. the standard class ids `https://ns.adobe.com/xdm/context/profile` and
   `https://ns.adobe.com/xdm/context/experienceevent` name their class directly;
2. a tenant schema id extending one of them is accepted when its last path segment (or the
   `schemaRef.class` hint, if sent) says which: it contains "experienceevent"/"event" for the
   event class, "profile" for the profile class — e.g.
   `https://ns.adobe.com/acme/schemas/web-experienceevent` or `.../loyalty-profile`;
3. anything else is refused with a 400 that names the accepted forms.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from audiences.models import EVENT_CLASS, PROFILE_CLASS, Dataset, StreamingConnection
from portal.errors import ErrorCode, SiftError

PROFILE_SCHEMA_ID = "https://ns.adobe.com/xdm/context/profile"
EVENT_SCHEMA_ID = "https://ns.adobe.com/xdm/context/experienceevent"
STANDARD_CLASSES = {PROFILE_SCHEMA_ID: PROFILE_CLASS, EVENT_SCHEMA_ID: EVENT_CLASS}
RESERVED_TAGS = ("unifiedProfile", "unifiedIdentity")
DEFAULT_TAGS = {"unifiedProfile": ["enabled:true"], "unifiedIdentity": ["enabled:true"]}


def schema_class(schema_ref: dict) -> str:
    """The XDM class name (`_xdm.context.profile` / `_xdm.context.experienceevent`) of a
    `schemaRef`, by the rule in the module docstring."""
    schema_id = (schema_ref or {}).get("id") if isinstance(schema_ref, dict) else None
    if not isinstance(schema_id, str) or not schema_id:
        raise SiftError(ErrorCode.INVALID, "schemaRef.id is required.", {"field": "schemaRef.id"})
    if schema_id in STANDARD_CLASSES:
        return STANDARD_CLASSES[schema_id]
    parts = urlsplit(schema_id)
    hint = str(schema_ref.get("class") or parts.path.rstrip("/").rsplit("/", 1)[-1]).lower()
    hint = hint.replace("-", "").replace("_", "").replace(".", "")
    if parts.scheme in ("http", "https") and parts.netloc:
        if "experienceevent" in hint or hint.endswith("event") or hint.endswith("events"):
            return EVENT_CLASS
        if "profile" in hint:
            return PROFILE_CLASS
    raise SiftError(
        ErrorCode.INVALID,
        f"schemaRef.id {schema_id[:200]!r} names no class Sift knows: use "
        f"{PROFILE_SCHEMA_ID}, {EVENT_SCHEMA_ID}, or a tenant schema id whose last segment "
        "says 'profile' or 'experienceevent' (e.g. https://ns.adobe.com/acme/schemas/"
        "loyalty-profile).", {"field": "schemaRef.id"})


def _clean_tags(tags: dict | None) -> dict:
    if tags is None:
        return {k: list(v) for k, v in DEFAULT_TAGS.items()}
    if not isinstance(tags, dict):
        raise SiftError(ErrorCode.INVALID, "tags must be an object of string arrays.",
                        {"field": "tags"})
    for name, values in tags.items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise SiftError(ErrorCode.INVALID, f"tags.{name} must be an array of strings.",
                            {"field": f"tags.{name}"})
    return tags


def dataset_create(*, name: str, schema_ref: dict, description: str = "",
                   tags: dict | None = None, user: Any = None) -> Dataset:
    """A dataset of this sandbox. `tags=None` enables it for Profile and Identity (what Sift
    is for); pass tags explicitly to say otherwise."""
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise SiftError(ErrorCode.INVALID, "name is required (at most 200 characters).",
                        {"field": "name"})
    class_name = schema_class(schema_ref)
    try:
        with transaction.atomic():
            return Dataset.objects.create(
                name=name, description=description or "", class_name=class_name,
                schema_ref=dict(schema_ref), tags=_clean_tags(tags), created_by=user)
    except IntegrityError:
        raise SiftError(ErrorCode.ALREADY_EXISTS,
                        f"A dataset named {name!r} already exists in this sandbox.",
                        {"field": "name"}) from None


def dataset_list(*, class_name: str | None = None) -> QuerySet:
    datasets = Dataset.objects.all()
    if class_name:
        datasets = datasets.filter(class_name=class_name)
    return datasets.order_by("name", "pk")


def dataset_get(*, dataset_id: str) -> Dataset:
    dataset = Dataset.objects.filter(pk=str(dataset_id)).first()
    if dataset is None:
        raise SiftError(ErrorCode.NOT_FOUND,
                        f"Dataset {str(dataset_id)[:64]!r} does not exist in this sandbox.",
                        {"datasetId": str(dataset_id)[:64]})
    return dataset


def dataset_tags_update(*, dataset: Dataset, tags: dict) -> Dataset:
    """Add or replace tags (the catalog PATCH `add /tags/<name>`)."""
    dataset.tags = {**(dataset.tags or {}), **_clean_tags(tags)}
    dataset.save(update_fields=["tags", "updated_at"])
    return dataset


# --- Streaming connections ----------------------------------------------------------------


def streaming_connection_create(*, name: str, description: str = "",
                                authentication_required: bool = False, source_name: str = "",
                                user: Any = None) -> StreamingConnection:
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise SiftError(ErrorCode.INVALID, "name is required (at most 200 characters).",
                        {"field": "name"})
    return StreamingConnection.objects.create(
        name=name, description=description or "",
        authentication_required=bool(authentication_required),
        source_name=(source_name or name)[:200], created_by=user)


def streaming_connection_list() -> QuerySet:
    return StreamingConnection.objects.order_by("name", "created_at")


def streaming_connection_get(*, connection_id: Any) -> StreamingConnection:
    try:
        pk = uuid.UUID(str(connection_id))
    except ValueError:
        pk = None
    connection = StreamingConnection.objects.filter(pk=pk).first() if pk else None
    if connection is None:
        raise SiftError(ErrorCode.NOT_FOUND,
                        f"Streaming connection {str(connection_id)[:64]!r} does not exist.")
    return connection


def inlet_find(*, inlet_id: str) -> StreamingConnection | None:
    """The connection owning an inlet id, across every tenant: the collection endpoint is
    reached by inlet id alone, and the connection then says which sandbox to scope to."""
    if not isinstance(inlet_id, str) or len(inlet_id) != 64:
        return None
    return (StreamingConnection.objects.unscoped()
            .select_related("sandbox__organization").filter(inlet_id=inlet_id.lower()).first())
