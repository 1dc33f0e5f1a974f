"""Previews and estimates: who matches an expression right now, and how many they are.

A preview is created NEW and run by the Celery task `audiences.tasks.preview_run`, which claims
it (NEW -> RUNNING, compare-and-set) and evaluates the expression with the Python evaluator over
the merge policy's current profiles, chunk by chunk, writing progress after every chunk (the row's
`updated_at` is the heartbeat; a preview silent for `SIFT_PREVIEW_STALE_SECONDS` is reported
FAILED when read). The evaluation instant is the preview's creation time.

Estimates follow Adobe's sampling rule: every profile when the policy has at most
`SIFT_ESTIMATE_FULL_DATA_MAX` (1M) profiles, so the count is exact and the interval has zero
width; otherwise a systematic pseudo-random sample (`pk * 7919 mod 100003` below a threshold,
independent of profile content) of `SIFT_ESTIMATE_SAMPLE_SIZE` profiles, or 5 % above 20M. From
a sample of n out of N profiles with k matches the estimate is N * k/n, and the 95 % interval is
the Wilson score interval for k/n with the finite-population correction (n replaced by
n (N-1)/(N-n)), scaled by N and clipped to what the sample proves ([k, N-(n-k)]).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Mod
from django.utils import timezone

from audiences.models import MergePolicy, Preview, Profile
from audiences.pql import PQLError
from audiences.services.definitions import (
    _verdict_from_parse_error,
    expression_parse,
    is_uuid,
    merge_policy_get,
)
from audiences.services.evaluation import evaluate_chunks
from portal.errors import ErrorCode, SiftError

Z_95 = 1.959963984540054
SAMPLE_MODULUS = 100_003
SAMPLE_MULTIPLIER = 7_919
PROFILE_SCHEMA = "_xdm.context.profile"


def _pick_policy(*, graph_type: str | None, merge_policy_id: str | None) -> MergePolicy:
    if merge_policy_id:
        return merge_policy_get(merge_policy_id=merge_policy_id)
    policies = MergePolicy.objects.order_by("-is_default", "name")
    if graph_type:
        policies = policies.filter(identity_graph=graph_type)
    policy = policies.first()
    if policy is None:
        raise SiftError(ErrorCode.UNKNOWN_MERGE_POLICY,
                        f"No merge policy with identity graph {graph_type!r} in this sandbox.",
                        {"graphType": graph_type})
    return policy


def preview_create(*, expression: str, predicate_type: str = "pql/text",
                   model: str = PROFILE_SCHEMA, graph_type: str | None = None,
                   merge_policy_id: str | None = None, user: User | None, now: datetime
                   ) -> Preview:
    """Validate the expression, store a NEW preview and enqueue its run after commit."""
    if model != PROFILE_SCHEMA:
        raise SiftError(ErrorCode.INVALID, f"predicateModel must be {PROFILE_SCHEMA!r}.",
                        {"field": "predicateModel"})
    if graph_type not in (None, "", "none", "pdg"):
        raise SiftError(ErrorCode.INVALID, "graphType must be 'none' or 'pdg'.",
                        {"field": "graphType"})
    try:
        _query, text = expression_parse(expression=expression, expression_format=predicate_type)
    except PQLError as exc:
        _verdict_from_parse_error(exc, expression).raise_for_problems()
    policy = _pick_policy(graph_type=graph_type or None, merge_policy_id=merge_policy_id)
    preview = Preview.objects.create(expression=text, graph_type=policy.identity_graph,
                                     merge_policy=policy, state=Preview.State.NEW,
                                     created_at=now, updated_at=now)
    from audiences.tasks import preview_run as task

    preview_id = str(preview.pk)
    transaction.on_commit(lambda: task.delay(preview_id))
    return preview


def preview_get(*, preview_id: Any, now: datetime) -> Preview:
    preview = Preview.objects.filter(pk=preview_id).first() if is_uuid(str(preview_id)) else None
    if preview is None:
        raise SiftError(ErrorCode.NOT_FOUND, f"The preview {preview_id} is not found.")
    stale = now - timedelta(seconds=settings.SIFT_PREVIEW_STALE_SECONDS)
    if preview.state in (Preview.State.NEW, Preview.State.RUNNING) and preview.updated_at < stale:
        # The worker died or never picked it up: say so instead of RUNNING forever.
        if Preview.objects.filter(pk=preview.pk, state=preview.state,
                                  updated_at=preview.updated_at).update(
                state=Preview.State.FAILED, updated_at=now,
                error="The preview stopped making progress (no worker picked it up, or it "
                      "died); create a new preview."):
            preview.refresh_from_db()
    return preview


def preview_delete(*, preview_id: Any, now: datetime) -> None:
    """Stop and forget a preview; a running task notices on its next progress write."""
    preview = preview_get(preview_id=preview_id, now=now)
    preview.delete()


def _sample_plan(total: int) -> tuple[int | None, int]:
    """(threshold of the pseudo-random filter or None for every profile, expected sample size)."""
    if total <= settings.SIFT_ESTIMATE_FULL_DATA_MAX:
        return None, total
    size = settings.SIFT_ESTIMATE_SAMPLE_SIZE
    if total > settings.SIFT_ESTIMATE_SAMPLE_FRACTION_ABOVE:
        size = math.ceil(total * 0.05)
    threshold = max(1, math.ceil(size / total * SAMPLE_MODULUS))
    return threshold, size


def estimate_interval(*, matched: int, scanned: int, total: int) -> dict[str, float]:
    """Point estimate, standard error and 95 % bounds of the matching count in `total`."""
    if scanned <= 0 or total <= 0:
        return {"estimate": 0.0, "standardError": 0.0, "lower": 0.0, "upper": float(total)}
    if scanned >= total:
        return {"estimate": float(matched), "standardError": 0.0, "lower": float(matched),
                "upper": float(matched)}
    p = matched / scanned
    fpc = (total - scanned) / (total - 1)
    n_eff = scanned / fpc
    z2 = Z_95 ** 2
    centre = (p + z2 / (2 * n_eff)) / (1 + z2 / n_eff)
    half = Z_95 * math.sqrt(p * (1 - p) / n_eff + z2 / (4 * n_eff ** 2)) / (1 + z2 / n_eff)
    lower = max(float(matched), (centre - half) * total)
    upper = min(float(total - (scanned - matched)), (centre + half) * total)
    return {"estimate": p * total, "standardError": total * math.sqrt(p * (1 - p) / scanned * fpc),
            "lower": lower, "upper": upper}


def _result_entry(profile: Profile) -> dict[str, Any]:
    return {"profileId": profile.pk, "entityId": profile.entity_id,
            "namespace": profile.primary_namespace, "id": profile.primary_id,
            "identityMap": profile.identity_map or {}}


def _estimate_json(*, total: int, scanned: int, matched: int, namespaces: Counter,
                   sample_size: int, exact: bool) -> dict[str, Any]:
    bounds = estimate_interval(matched=matched, scanned=scanned,
                               total=total if not exact else scanned)
    scale = total / scanned if scanned and not exact else 1.0
    return {
        "estimatedSize": round(bounds["estimate"]),
        "numRowsToRead": sample_size,
        "totalRows": total,
        "profilesReadSoFar": scanned,
        "profilesMatchedSoFar": matched,
        "standardError": round(bounds["standardError"], 3),
        "confidenceInterval": "95%",
        "estimatedNamespaceDistribution": [
            {"namespaceId": ns, "profilesMatchedSoFar": round(count * scale)}
            for ns, count in sorted(namespaces.items())],
        "sift:bounds": {"lower": math.floor(bounds["lower"]), "upper": math.ceil(bounds["upper"]),
                        "method": "exact" if exact else "wilson-fpc", "sampled": not exact},
    }


def preview_run(*, preview_id: Any, now: datetime,
                clock: Callable[[], datetime] = timezone.now) -> str:
    """Run one preview to completion; returns its final state (idempotent on redelivery).

    `now` is when the run starts; `clock` stamps the progress heartbeats.
    """
    claimed = Preview.objects.filter(pk=preview_id, state=Preview.State.NEW).update(
        state=Preview.State.RUNNING, updated_at=now)
    preview = Preview.objects.filter(pk=preview_id).first()
    if preview is None:
        return "GONE"
    if not claimed:
        return preview.state  # another delivery ran it, or it finished
    try:
        query, _ = expression_parse(expression=preview.expression)
        policy = preview.merge_policy
        if policy is None:
            raise SiftError(ErrorCode.UNKNOWN_MERGE_POLICY, "The preview's merge policy is gone.")
        population = Profile.objects.filter(merge_policy=policy, excluded=False)
        total = population.count()
        threshold, sample_size = _sample_plan(total)
        profiles = population
        if threshold is not None:
            profiles = population.alias(
                sample_key=Mod(F("pk") * Value(SAMPLE_MULTIPLIER), Value(SAMPLE_MODULUS))
            ).filter(sample_key__lt=threshold)
        scanned = matched = 0
        namespaces: Counter = Counter()
        results: list[dict] = []
        estimate = _estimate_json(total=total, scanned=0, matched=0, namespaces=namespaces,
                                  sample_size=sample_size, exact=threshold is None)
        for chunk in evaluate_chunks(query=query, merge_policy=policy, now=preview.created_at,
                                     profiles=profiles):
            scanned += chunk.scanned
            matched += len(chunk.matched_profiles)
            for profile in chunk.matched_profiles:
                namespaces.update((profile.identity_map or {}).keys())
                if len(results) < settings.SIFT_PREVIEW_MAX_RESULTS:
                    results.append(_result_entry(profile))
            estimate = _estimate_json(total=total, scanned=scanned, matched=matched,
                                      namespaces=namespaces, sample_size=sample_size,
                                      exact=threshold is None and scanned >= total)
            if not Preview.objects.filter(pk=preview.pk).update(
                    estimate=estimate, results=results, updated_at=clock()):
                return "GONE"  # deleted while running
        if threshold is None:
            estimate = _estimate_json(total=scanned, scanned=scanned, matched=matched,
                                      namespaces=namespaces, sample_size=scanned, exact=True)
        Preview.objects.filter(pk=preview.pk).update(
            state=Preview.State.RESULT_READY, estimate=estimate, results=results,
            updated_at=clock())
        return Preview.State.RESULT_READY
    except (SiftError, PQLError) as exc:
        Preview.objects.filter(pk=preview.pk).update(
            state=Preview.State.FAILED, error=str(exc), updated_at=clock())
        return Preview.State.FAILED
    except Exception as exc:
        # Record the failure so the client sees FAILED with the cause, then let Celery log it.
        Preview.objects.filter(pk=preview.pk).update(
            state=Preview.State.FAILED, error=f"Evaluation failed: {exc!r}", updated_at=clock())
        raise
