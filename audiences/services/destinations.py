"""Destinations: send audience membership changes to webhooks, and audience members to files.

How a change travels to a webhook:
1. `membership_apply` records a `MembershipChange` and, after commit, announces its id
   (`destinations_changes_recorded`, a `SIFT_MEMBERSHIP_CONSUMERS` entry). Streaming, edge and
   every change made outside a batch job is enqueued at once; a batch job's changes wait for
   `destinations_job_finished(job_id=...)` (a `SIFT_JOB_FINISHED_HOOKS` entry), so a receiver
   never sees half a job.
2. `deliveries_enqueue` writes one `Delivery` per (webhook destination activating the audience,
   change) with its payload frozen and an idempotency key; a unique key makes a repeated
   announcement a no-op. After commit one `delivery_flush` task per destination is queued on
   the `deliveries` queue, so a slow receiver never slows evaluation.
3. `delivery_flush` claims due pending rows with a conditional UPDATE, POSTs them as one signed
   JSON batch, and records the answer: 2xx delivers, anything else (or a timeout) schedules the
   next attempt with exponential backoff, and the last allowed attempt dead-letters the row.
   `deliveries_retry_sweep` (beat) flushes destinations whose retries have come due.
4. `delivery_replay` (admins) puts dead letters back to pending once.

Signature recipe (documented in the README): `X-Sift-Timestamp` is the Unix time in seconds,
`X-Sift-Signature` is `sha256=` + hex(HMAC-SHA256(secret, timestamp + "." + raw body)).

Order is not guaranteed across retries; each change carries `changeId` (grows with time) and
`time`, so a receiver can drop a change older than one it already applied.

File exports write an audience's members (full) or the realized/exited changes since the last
successful run (incremental) as CSV or JSON Lines, one file per activated audience plus a
manifest, streaming rows from the database to disk.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import hmac
import itertools
import json
import logging
import os
import re
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib import error as urlerror
from urllib import request as urlrequest
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Count, Exists, F, Max, OuterRef, Q, QuerySet
from django.utils import timezone

from audiences.models import (
    QUALIFIED,
    Activation,
    Delivery,
    Destination,
    FileExportRun,
    Membership,
    MembershipChange,
    Profile,
    SegmentDefinition,
    SegmentJob,
    Status,
)
from portal.errors import ErrorCode, SiftError
from portal.scope import sandbox_scope

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from audiences.services.memberships import ChangesRecorded

log = logging.getLogger(__name__)

DELIVERED_STATUSES = (Status.REALIZED, Status.EXITED)
ATTRIBUTE_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
FOLDER_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
ENQUEUE_CHUNK = 1000
USER_AGENT = "Sift-Destinations/1"
MAX_FLUSH_BATCHES = 50  # per task run; the task re-enqueues itself for the rest


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


# --- Reads ---------------------------------------------------------------------------------------


def destination_get(*, destination_id: Any) -> Destination:
    """One destination of the current sandbox; other sandboxes' ids are simply not found."""
    destination = None
    try:
        destination = Destination.objects.filter(pk=uuid.UUID(str(destination_id))).first()
    except ValueError:
        pass
    if destination is None:
        raise SiftError(ErrorCode.NOT_FOUND, f"The destination {destination_id} is not found. "
                                             "Use a valid entity and try again.")
    return destination


def activation_get(*, destination: Destination, activation_id: Any) -> Activation:
    activation = None
    if re.fullmatch(r"[0-9]{1,18}", str(activation_id)):
        activation = (destination.activations.select_related("definition")
                      .filter(pk=int(activation_id)).first())
    if activation is None:
        raise SiftError(ErrorCode.NOT_FOUND, f"The activation {activation_id} is not found on "
                                             f"destination {destination.pk}.")
    return activation


def destinations_for_definition(definition: SegmentDefinition) -> list[Activation]:
    """The audience's activations with their destination (the details page's card)."""
    return list(Activation.objects.filter(definition=definition)
                .select_related("destination").order_by("destination__name"))


def definitions_with_destination(queryset: QuerySet, value: bool) -> QuerySet:
    """Filter definitions by "Has destination" (the Audience Portal's filter)."""
    activated = Exists(Activation.objects.filter(definition=OuterRef("pk")))
    return queryset.filter(activated) if value else queryset.exclude(activated)


def activation_blockers(definition: SegmentDefinition) -> list[str]:
    """Why `definition` may not be deleted because of activations (AEP refuses to delete an
    audience that is activated; deactivate it first)."""
    return [f"It is activated to destination {a.destination.name} ({a.destination.pk}); "
            "deactivate it first."
            for a in destinations_for_definition(definition)]


def delivery_counts(*, destination: Destination) -> dict[str, int]:
    rows = (Delivery.objects.filter(destination=destination).values("status")
            .annotate(n=Count("id")))
    counts = {status: 0 for status in Delivery.Status.values}
    counts.update({row["status"]: row["n"] for row in rows})
    return counts


# --- Destinations and activations ----------------------------------------------------------------


def export_root() -> Path:
    return Path(settings.SIFT_EXPORT_DIR)


def _check_name(name: str, *, exclude_pk: Any = None) -> str:
    if not (name or "").strip():
        raise SiftError(ErrorCode.INVALID, "name is required.", {"field": "name"})
    if len(name) > 200:
        raise SiftError(ErrorCode.INVALID, "name is longer than 200 characters.",
                        {"field": "name"})
    taken = Destination.objects.filter(name=name)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise SiftError(ErrorCode.ALREADY_EXISTS,
                        f"A destination named {name!r} already exists in this sandbox.",
                        {"name": name})
    return name


def _check_url(url: str) -> str:
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
        raise SiftError(ErrorCode.INVALID,
                        "url must be an http:// or https:// URL with a host (at most 2000 "
                        "characters).", {"field": "url", "value": (url or "")[:200]})
    return url


def _check_folder(folder: str) -> str:
    """A relative folder under SIFT_EXPORT_DIR: mounted storage is mounted below it, so an API
    client can never write elsewhere on the server."""
    folder = (folder or "").strip().rstrip("/")
    parts = folder.split("/") if folder else []  # an absolute path yields an empty first part
    if not parts or len(folder) > 500 or not all(FOLDER_PART.match(p) for p in parts):
        raise SiftError(ErrorCode.INVALID,
                        "folder must be a relative path under the export directory made of "
                        "letters, digits, '_', '-' and '.' (not starting with '.').",
                        {"field": "folder", "value": folder[:200]})
    return folder


def _check_choice(value: str, choices: type, field: str) -> str:
    if value not in choices.values:
        raise SiftError(ErrorCode.INVALID, f"{field} must be one of {', '.join(choices.values)}.",
                        {"field": field, "value": str(value)[:100]})
    return value


def _validated(fields: dict[str, Any], *, kind: str, exclude_pk: Any = None) -> dict[str, Any]:
    out = dict(fields)
    if "name" in out:
        out["name"] = _check_name(out["name"], exclude_pk=exclude_pk)
    if "url" in out and (kind == Destination.Kind.WEBHOOK or out["url"]):
        out["url"] = _check_url(out["url"])
    if "folder" in out and (kind == Destination.Kind.FILE or out["folder"]):
        out["folder"] = _check_folder(out["folder"])
    for field, choices in (("file_format", Destination.FileFormat), ("mode", Destination.Mode),
                           ("schedule", Destination.Schedule)):
        if field in out:
            _check_choice(out[field], choices, field)
    return out


def destination_create(*, name: str, kind: str, url: str = "", folder: str = "",
                       file_format: str = Destination.FileFormat.CSV,
                       mode: str = Destination.Mode.FULL,
                       schedule: str = Destination.Schedule.AFTER_JOB, description: str = "",
                       enabled: bool = True, user: User | None, now: datetime) -> Destination:
    """A webhook (needs `url`) or file (needs `folder`, defaulted) destination with a new secret."""
    _check_choice(kind, Destination.Kind, "kind")
    if kind == Destination.Kind.FILE and not folder:
        folder = f"destination-{secrets.token_hex(4)}"
    fields = _validated({"name": name, "url": url, "folder": folder, "file_format": file_format,
                         "mode": mode, "schedule": schedule}, kind=kind)
    with transaction.atomic():
        return Destination.objects.create(
            **fields, kind=kind, description=description, enabled=enabled,
            secret=secrets.token_urlsafe(32), created_by=user, created_at=now, updated_at=now)


EDITABLE = ("name", "description", "enabled", "url", "folder", "file_format", "mode",
            "schedule")


def destination_update(*, destination: Destination, changes: dict[str, Any],
                       rotate_secret: bool = False, now: datetime) -> Destination:
    """Change the editable fields (the kind is fixed: activations depend on it)."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise SiftError(ErrorCode.IMMUTABLE_FIELD,
                        f"These fields cannot be changed: {', '.join(sorted(unknown))}.",
                        {"fields": sorted(unknown)})
    fields = _validated(changes, kind=destination.kind, exclude_pk=destination.pk)
    for field, value in fields.items():
        setattr(destination, field, value)
    if rotate_secret:
        destination.secret = secrets.token_urlsafe(32)
    destination.updated_at = now
    with transaction.atomic():
        destination.save()
    return destination


def destination_delete(*, destination: Destination) -> None:
    """Delete a destination with its activations and delivery history (files stay on disk)."""
    with transaction.atomic():
        destination.delete()


def _check_attributes(attributes: Iterable[Any]) -> list[str]:
    out: list[str] = []
    for path in attributes or []:
        if not isinstance(path, str) or not ATTRIBUTE_PATH.match(path) or len(path) > 300:
            raise SiftError(ErrorCode.INVALID,
                            f"attributes must be dotted profile paths such as "
                            f"person.name.firstName; got {str(path)[:100]!r}.",
                            {"field": "attributes"})
        if path not in out:
            out.append(path)
    return out


def activation_set(*, destination: Destination, definition: SegmentDefinition, namespace: str,
                   attributes: Iterable[str] = (), user: User | None, now: datetime
                   ) -> Activation:
    """Activate `definition` to `destination` (or change the namespace/attributes sent)."""
    namespace = (namespace or "").strip()
    if not namespace or len(namespace) > 100:
        raise SiftError(ErrorCode.INVALID, "namespace is required (an identity namespace code "
                                           "such as Email or ECID).", {"field": "namespace"})
    attributes = _check_attributes(attributes)
    with transaction.atomic():
        activation, _ = Activation.objects.update_or_create(
            destination=destination, definition=definition,
            defaults={"namespace": namespace, "attributes": attributes},
            create_defaults={"namespace": namespace, "attributes": attributes,
                             "created_by": user, "created_at": now})
    return activation


def activation_delete(*, activation: Activation) -> None:
    """Deactivate: no new deliveries; pending ones already queued still go out."""
    with transaction.atomic():
        activation.delete()


# --- Payloads ------------------------------------------------------------------------------------


def _value_at(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _identities(profile: Profile | None, profile_key: str, namespace: str) -> list[str]:
    """The profile's identity values in `namespace` (namespace codes compare case-blind)."""
    wanted = namespace.lower()
    if profile is not None:
        for code, entries in (profile.identity_map or {}).items():
            if code.lower() == wanted:
                return [e["id"] for e in entries if isinstance(e, dict) and "id" in e]
        return []
    code, _, value = profile_key.partition(":")  # the profile is gone: keep its primary id
    return [value] if code.lower() == wanted and value else []


def _attributes(profile: Profile | None, paths: list[str]) -> dict[str, Any]:
    attributes = profile.attributes if profile is not None else {}
    return {path: _value_at(attributes, path) for path in paths}


def change_payload(*, change: MembershipChange, activation: Activation, key: str
                   ) -> dict[str, Any]:
    """One change as a receiver gets it."""
    definition = change.definition
    return {
        "idempotencyKey": key,
        "changeId": change.pk,
        "audienceId": str(definition.pk),
        "audienceName": definition.name,
        "status": change.new_status,
        "previousStatus": change.old_status or None,
        "time": change.at.isoformat().replace("+00:00", "Z"),
        "source": change.source,
        "namespace": activation.namespace,
        "identities": _identities(change.profile, change.profile_key, activation.namespace),
        "attributes": _attributes(change.profile, activation.attributes),
    }


def idempotency_key(*, destination_id: Any, change_id: int) -> str:
    return f"{destination_id}:{change_id}"


# --- Enqueueing ----------------------------------------------------------------------------------


def destinations_changes_recorded(*, announcement: ChangesRecorded) -> None:
    """`SIFT_MEMBERSHIP_CONSUMERS` entry: deliver changes made outside batch jobs at once.

    A batch job's changes are delivered by `destinations_job_finished` when the job ends.
    """
    if announcement.job_id:
        return
    if not Activation.objects.unscoped().filter(
            sandbox_id=announcement.sandbox_id, destination__kind=Destination.Kind.WEBHOOK,
            destination__enabled=True).exists():
        return  # the streaming hot path when nothing is activated: one query
    from portal.models import Sandbox

    sandbox = Sandbox.objects.get(pk=announcement.sandbox_id)
    with sandbox_scope(sandbox):
        deliveries_enqueue(change_ids=announcement.change_ids, now=timezone.now())


def destinations_job_finished(*, job_id: Any) -> None:
    """`SIFT_JOB_FINISHED_HOOKS` entry: deliver the job's changes, run after-job file exports."""
    job = SegmentJob.objects.unscoped().select_related("sandbox").filter(pk=job_id).first()
    if job is None:
        return
    with sandbox_scope(job.sandbox):
        now = timezone.now()
        ids = (MembershipChange.objects.filter(job_id=job.pk).order_by("id")
               .values_list("id", flat=True).iterator(chunk_size=ENQUEUE_CHUNK))
        touched: set[str] = set()
        while chunk := list(itertools.islice(ids, ENQUEUE_CHUNK)):
            touched |= set(deliveries_enqueue(change_ids=chunk, now=now, flush=False))
        for destination_id in sorted(touched):  # one flush per destination for the whole job
            _dispatch("delivery_flush", destination_id=destination_id)
        for destination_id in (Destination.objects.filter(
                kind=Destination.Kind.FILE, enabled=True,
                schedule=Destination.Schedule.AFTER_JOB, activations__isnull=False)
                .distinct().values_list("pk", flat=True)):
            _dispatch("export_destination_run", destination_id=str(destination_id),
                      trigger=Destination.Schedule.AFTER_JOB)


def deliveries_enqueue(*, change_ids: Iterable[int], now: datetime, flush: bool = True
                       ) -> Counter[str]:
    """Write a delivery per (webhook destination activating the audience, change) and, unless
    told not to, queue a flush per destination after commit. Returns the rows considered per
    destination id; re-enqueuing the same changes adds nothing (unique idempotency key)."""
    activations: dict[Any, list[Activation]] = {}
    for activation in (Activation.objects.filter(destination__kind=Destination.Kind.WEBHOOK,
                                                 destination__enabled=True)
                       .select_related("destination")):
        activations.setdefault(activation.definition_id, []).append(activation)
    change_ids = list(change_ids)
    if not activations or not change_ids:
        return Counter()
    changes = (MembershipChange.objects.filter(pk__in=change_ids,
                                               definition_id__in=list(activations),
                                               new_status__in=DELIVERED_STATUSES)
               .select_related("definition", "profile").order_by("id"))
    rows: list[Delivery] = []
    for change in changes:
        for activation in activations[change.definition_id]:
            key = idempotency_key(destination_id=activation.destination_id, change_id=change.pk)
            rows.append(Delivery(
                destination_id=activation.destination_id, definition_id=change.definition_id,
                change=change, idempotency_key=key,
                payload=change_payload(change=change, activation=activation, key=key),
                next_attempt_at=now, created_at=now))
    per_destination = Counter(str(row.destination_id) for row in rows)
    if rows:
        with transaction.atomic():
            Delivery.objects.bulk_create(rows, ignore_conflicts=True)
            for destination_id in per_destination if flush else ():
                _dispatch("delivery_flush", destination_id=destination_id)
    return per_destination


def _dispatch(task_name: str, **kwargs: Any) -> None:
    """Queue a task after commit. In the embedded default (eager, no broker) with background
    work allowed, run it on a thread so a slow receiver never holds up the caller."""
    from audiences import tasks
    from portal.celery import app

    task = getattr(tasks, task_name)
    if app.conf.task_always_eager and settings.SIFT_INPROCESS_BACKGROUND:
        transaction.on_commit(lambda: _in_background(task, kwargs))
    else:
        transaction.on_commit(lambda: task.apply_async(kwargs=kwargs))


def _in_background(task: Any, kwargs: dict[str, Any]) -> None:
    def run() -> None:
        try:
            task.apply(kwargs=kwargs, throw=False)
        finally:
            connections.close_all()

    threading.Thread(target=run, name=f"sift-{task.name}", daemon=True).start()


# --- Sending -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendResult:
    ok: bool
    status_code: int | None
    latency_ms: int
    error: str


@dataclass(frozen=True)
class FlushResult:
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    more: bool = False


def signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=` + hex HMAC-SHA256 over `timestamp.body` (the README's recipe)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


class _NoRedirects(urlrequest.HTTPRedirectHandler):
    """A redirect is not a delivery: report the 3xx instead of re-sending elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urlrequest.build_opener(urlrequest.ProxyHandler({}), _NoRedirects())


def webhook_post(*, destination: Destination, payload: dict[str, Any], now: datetime
                 ) -> SendResult:
    """POST one signed JSON document; never raises for network or HTTP failures."""
    body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    timestamp = str(int(now.timestamp()))
    req = urlrequest.Request(destination.url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": USER_AGENT,
        "X-Sift-Timestamp": timestamp, "X-Sift-Destination": str(destination.pk),
        "X-Sift-Signature": signature(secret=destination.secret, timestamp=timestamp,
                                      body=body)})
    started = time.monotonic()
    try:
        with _opener.open(req, timeout=_setting("SIFT_DELIVERY_TIMEOUT_SECONDS", 10)) as answer:
            answer.read(1024)
            code = answer.status
        error = ""
    except urlerror.HTTPError as exc:
        code, error = exc.code, f"HTTP {exc.code}: {exc.read(300).decode(errors='replace')}"
    except (urlerror.URLError, OSError, ValueError) as exc:  # refused, DNS, timeout, TLS
        reason = getattr(exc, "reason", exc)
        code, error = None, f"{type(reason).__name__}: {reason}"[:500]
    latency = int((time.monotonic() - started) * 1000)
    return SendResult(ok=code is not None and 200 <= code < 300, status_code=code,
                      latency_ms=latency, error=error.strip()[:2000])


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff after `attempts` failed tries: base, 2×base, 4×base… capped."""
    base = _setting("SIFT_DELIVERY_RETRY_BASE_SECONDS", 10)
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0),
                                 _setting("SIFT_DELIVERY_RETRY_MAX_SECONDS", 3600)))


def _unclaimed(now: datetime) -> Q:
    return Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)


def _claim(destination: Destination, now: datetime) -> list[Delivery]:
    """Take up to one batch of due pending deliveries by a conditional UPDATE (two senders
    never hold the same row: the second one's WHERE no longer matches)."""
    size = _setting("SIFT_DELIVERY_BATCH_SIZE", 100)
    due = (Delivery.objects.filter(destination=destination, status=Delivery.Status.PENDING,
                                   next_attempt_at__lte=now).filter(_unclaimed(now))
           .order_by("id").values_list("pk", flat=True)[:size])
    ids = list(due)
    if not ids:
        return []
    token = uuid.uuid4()
    lease = timedelta(seconds=_setting("SIFT_DELIVERY_TIMEOUT_SECONDS", 10) + 30)
    Delivery.objects.filter(pk__in=ids, status=Delivery.Status.PENDING).filter(
        _unclaimed(now)).update(claim=token, claimed_until=now + lease)
    return list(Delivery.objects.filter(claim=token).order_by("id"))


def _record(rows: list[Delivery], result: SendResult, now: datetime) -> FlushResult:
    """Write the answer on every row of the batch: delivered, retry later, or dead letter.

    Only rows still held by this sender's claim are written: a row whose lease ran out and was
    claimed again belongs to the other sender now.
    """
    common = {"last_status_code": result.status_code, "last_latency_ms": result.latency_ms,
              "last_error": result.error, "last_attempt_at": now, "claim": None,
              "claimed_until": None, "attempts": F("attempts") + 1}
    held = Delivery.objects.filter(pk__in=[row.pk for row in rows], claim=rows[0].claim)
    if result.ok:
        return FlushResult(delivered=held.update(**common, status=Delivery.Status.DELIVERED,
                                                 delivered_at=now))
    limit = _setting("SIFT_DELIVERY_MAX_ATTEMPTS", 6)
    dead = held.filter(attempts__gte=limit - 1).update(**common, status=Delivery.Status.DEAD)
    failed = 0
    for attempts in {row.attempts for row in rows if row.attempts + 1 < limit}:
        failed += held.filter(attempts=attempts).update(
            **common, next_attempt_at=now + retry_delay(attempts + 1))
    return FlushResult(failed=failed, dead=dead)


def delivery_flush(*, destination: Destination, now: datetime) -> FlushResult:
    """Send the destination's due deliveries in batches; `more` when some are left for the
    next run (bounded work per task)."""
    delivered = failed = dead = 0
    if not destination.enabled:
        return FlushResult()  # paused: pending rows wait until it is enabled again
    for _ in range(MAX_FLUSH_BATCHES):
        rows = _claim(destination, now)
        if not rows:
            return FlushResult(delivered, failed, dead, more=False)
        payload = {"destinationId": str(destination.pk), "sentAt": now.isoformat(),
                   "changes": [row.payload for row in rows]}
        result = _record(rows, webhook_post(destination=destination, payload=payload, now=now),
                         now)
        delivered, failed, dead = (delivered + result.delivered, failed + result.failed,
                                   dead + result.dead)
        if result.delivered == 0:
            # The receiver is failing: leave the rest for the retry schedule.
            return FlushResult(delivered, failed, dead, more=False)
    return FlushResult(delivered, failed, dead, more=True)


def deliveries_retry_sweep(*, now: datetime) -> int:
    """Beat: queue a flush for every destination (any sandbox) with deliveries due now."""
    destination_ids = list(
        Delivery.objects.unscoped().filter(status=Delivery.Status.PENDING,
                                           next_attempt_at__lte=now,
                                           destination__enabled=True).filter(_unclaimed(now))
        .values_list("destination_id", flat=True).distinct())
    for destination_id in destination_ids:
        _dispatch("delivery_flush", destination_id=str(destination_id))
    return len(destination_ids)


def delivery_replay(*, destination: Destination, delivery_ids: Iterable[int] | None = None,
                    now: datetime) -> int:
    """Put dead letters (all, or the given ids) back to pending for one more round of attempts.

    Only `dead` rows move, so replaying twice, or replaying a delivered row, sends nothing more.
    """
    dead = Delivery.objects.filter(destination=destination, status=Delivery.Status.DEAD)
    if delivery_ids is not None:
        dead = dead.filter(pk__in=list(delivery_ids))
    with transaction.atomic():
        replayed = dead.update(status=Delivery.Status.PENDING, attempts=0, next_attempt_at=now,
                               claim=None, claimed_until=None, replays=F("replays") + 1)
        if replayed:
            _dispatch("delivery_flush", destination_id=str(destination.pk))
    return replayed


@dataclass(frozen=True)
class ConnectionTest:
    ok: bool
    status_code: int | None
    latency_ms: int
    message: str


def destination_test(*, destination: Destination, now: datetime) -> ConnectionTest:
    """Webhook: POST a signed `{"test": true}`; file: write and remove a probe file."""
    if destination.kind == Destination.Kind.WEBHOOK:
        result = webhook_post(destination=destination, now=now, payload={
            "test": True, "destinationId": str(destination.pk), "sentAt": now.isoformat(),
            "changes": []})
        message = (f"The receiver answered {result.status_code} in {result.latency_ms} ms."
                   if result.ok else result.error or "No answer.")
        return ConnectionTest(result.ok, result.status_code, result.latency_ms, message)
    started = time.monotonic()
    folder = export_root() / destination.folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".sift-probe-{secrets.token_hex(4)}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        return ConnectionTest(False, None, int((time.monotonic() - started) * 1000),
                              f"{folder} is not writable: {exc.strerror or exc}")
    return ConnectionTest(True, None, int((time.monotonic() - started) * 1000),
                          f"{folder} is writable.")


# --- File exports --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportRow:
    status: str
    time: datetime
    identities: list[str]
    attributes: dict[str, Any]


def _full_rows(activation: Activation) -> Iterator[ExportRow]:
    members = (Membership.objects.filter(definition=activation.definition, status__in=QUALIFIED)
               .select_related("profile").order_by("id").iterator(chunk_size=2000))
    for membership in members:
        profile = membership.profile
        yield ExportRow(membership.status, membership.last_qualification_time,
                        _identities(profile, "", activation.namespace),
                        _attributes(profile, activation.attributes))


def _incremental_rows(activation: Activation, first: int, last: int) -> Iterator[ExportRow]:
    """The latest realized/exited change per profile in (first, last], one row per profile."""
    changes = (MembershipChange.objects.filter(definition=activation.definition, pk__gt=first,
                                               pk__lte=last,
                                               new_status__in=DELIVERED_STATUSES)
               .select_related("profile").order_by("profile_key", "id")
               .iterator(chunk_size=2000))
    previous: MembershipChange | None = None
    for change in changes:
        if previous is not None and previous.profile_key != change.profile_key:
            yield _change_row(previous, activation)
        previous = change
    if previous is not None:
        yield _change_row(previous, activation)


def _change_row(change: MembershipChange, activation: Activation) -> ExportRow:
    return ExportRow(change.new_status, change.at,
                     _identities(change.profile, change.profile_key, activation.namespace),
                     _attributes(change.profile, activation.attributes))


@dataclass
class _FileStats:
    rows: int = 0
    bytes: int = 0


def _write_rows(path: Path, rows: Iterable[ExportRow], *, activation: Activation,
                file_format: str) -> dict[str, Any]:
    """Stream rows into `path`; returns the file's manifest entry."""
    digest = hashlib.sha256()
    stats = _FileStats()
    definition = activation.definition

    with _atomic_file(path) as handle:
        def emit(text: str) -> None:
            data = text.encode()
            digest.update(data)
            stats.bytes += len(data)
            handle.write(text)

        if file_format == Destination.FileFormat.CSV:
            line = _CsvLine()
            emit(line(["audienceId", "status", "time", activation.namespace,
                       *activation.attributes]))
            for row in rows:
                emit(line([str(definition.pk), row.status, row.time.isoformat(),
                           ";".join(row.identities),
                           *(_csv_value(row.attributes[p]) for p in activation.attributes)]))
                stats.rows += 1
        else:
            for row in rows:
                emit(json.dumps({"audienceId": str(definition.pk), "status": row.status,
                                 "time": row.time.isoformat(),
                                 "namespace": activation.namespace,
                                 "identities": row.identities, "attributes": row.attributes},
                                default=str) + "\n")
                stats.rows += 1
    return {"audienceId": str(definition.pk), "audienceName": definition.name,
            "namespace": activation.namespace, "file": path.name, "rows": stats.rows,
            "bytes": stats.bytes, "sha256": digest.hexdigest()}


@contextlib.contextmanager
def _atomic_file(path: Path) -> Iterator[Any]:
    """Write through a hidden temporary name renamed at the end, so a reader never sees half a
    file; a failure removes the temporary file."""
    temporary = path.with_name("." + path.name + ".part")
    try:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            yield handle
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


class _CsvLine:
    """Format one CSV record as text (csv.writer writes to a file-like object only)."""

    def __init__(self) -> None:
        self.buffer: list[str] = []
        self.writer = csv.writer(self)

    def write(self, text: str) -> None:
        self.buffer.append(text)

    def __call__(self, values: list[Any]) -> str:
        self.buffer.clear()
        self.writer.writerow(values)
        return "".join(self.buffer)


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list | bool):
        return json.dumps(value)
    return str(value)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:60] or "audience"


def file_export_run(*, destination: Destination, trigger: str, now: datetime) -> FileExportRun:
    """Write one file per activated audience plus a manifest; returns the run (failed runs
    record the error and leave the incremental cursor where it was)."""
    if destination.kind != Destination.Kind.FILE:
        raise SiftError(ErrorCode.INVALID, f"{destination.name} is not a file destination.",
                        {"destinationId": str(destination.pk)})
    previous = (FileExportRun.objects.filter(destination=destination,
                                             status=FileExportRun.Status.SUCCEEDED)
                .order_by("-id").first())
    incremental = destination.mode == Destination.Mode.INCREMENTAL and previous is not None
    last = MembershipChange.objects.aggregate(m=Max("id"))["m"] or 0
    first = previous.last_change_id if incremental else 0
    run = FileExportRun.objects.create(
        destination=destination, trigger=trigger, started_at=now, first_change_id=first,
        last_change_id=last,
        mode=Destination.Mode.INCREMENTAL if incremental else Destination.Mode.FULL)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    folder = export_root() / destination.folder
    files = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for activation in destination.activations.select_related("definition"):
            rows = (_incremental_rows(activation, first, last) if incremental
                    else _full_rows(activation))
            name = (f"{_slug(activation.definition.name)}-{activation.definition.pk}-{stamp}-"
                    f"{run.pk}.{destination.file_format}")
            files.append(_write_rows(folder / name, rows, activation=activation,
                                     file_format=destination.file_format))
        manifest = {"runId": run.pk, "destinationId": str(destination.pk),
                    "mode": run.mode, "trigger": trigger, "format": destination.file_format,
                    "createdAt": now.isoformat(), "firstChangeId": first,
                    "lastChangeId": last, "files": files}
        manifest_path = folder / f"manifest-{stamp}-{run.pk}.json"
        with _atomic_file(manifest_path) as handle:
            handle.write(json.dumps(manifest, indent=2))
    except OSError as exc:
        run.status, run.error = FileExportRun.Status.FAILED, f"{exc.strerror or exc}"
        run.finished_at = now
        run.manifest = {"files": files}
        run.save()
        return run
    run.status, run.rows, run.finished_at = (FileExportRun.Status.SUCCEEDED,
                                             sum(f["rows"] for f in files), now)
    run.manifest = {**manifest, "manifest": manifest_path.name}
    with transaction.atomic():
        run.save()
        Destination.objects.filter(pk=destination.pk).update(last_export_at=now)
    return run


SCHEDULE_PERIODS = {Destination.Schedule.HOURLY: timedelta(hours=1),
                    Destination.Schedule.DAILY: timedelta(days=1)}


def file_exports_due(*, now: datetime) -> int:
    """Beat: queue the hourly/daily file exports that are due (claimed by a conditional UPDATE
    of `last_export_at`, so two beats never export twice), and fail runs whose worker died."""
    stale = now - timedelta(seconds=_setting("SIFT_EXPORT_STALE_SECONDS", 3600))
    FileExportRun.objects.unscoped().filter(
        status=FileExportRun.Status.RUNNING, started_at__lt=stale).update(
        status=FileExportRun.Status.FAILED, finished_at=now,
        error="The export stopped without finishing (its worker was lost).")
    queued = 0
    for schedule, period in SCHEDULE_PERIODS.items():
        due = (Destination.objects.unscoped()
               .filter(kind=Destination.Kind.FILE, enabled=True, schedule=schedule)
               .filter(Q(last_export_at__isnull=True) | Q(last_export_at__lte=now - period))
               .values_list("pk", "last_export_at"))
        for pk, last in due:
            if Destination.objects.unscoped().filter(pk=pk, last_export_at=last).update(
                    last_export_at=now) == 1:
                _dispatch("export_destination_run", destination_id=str(pk), trigger=schedule)
                queued += 1
    return queued


# --- Task entry points (ids in, scope entered here) ----------------------------------------------


def _destination_unscoped(destination_id: str) -> Destination | None:
    return (Destination.objects.unscoped().select_related("sandbox")
            .filter(pk=destination_id).first())


def delivery_flush_by_id(*, destination_id: str) -> int:
    """The `delivery_flush` task: flush one destination; queue another run if more is due."""
    destination = _destination_unscoped(destination_id)
    if destination is None:
        return 0  # deleted since the task was queued; its deliveries went with it
    with sandbox_scope(destination.sandbox):
        result = delivery_flush(destination=destination, now=timezone.now())
        if result.more:
            _dispatch("delivery_flush", destination_id=destination_id)
    return result.delivered


def file_export_run_by_id(*, destination_id: str, trigger: str) -> str:
    """The `export_destination_run` task: one file export; returns the run's status."""
    destination = _destination_unscoped(destination_id)
    if destination is None:
        return "GONE"
    with sandbox_scope(destination.sandbox):
        run = file_export_run(destination=destination, trigger=trigger, now=timezone.now())
        return run.status
