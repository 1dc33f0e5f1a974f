"""Parity: recompute streaming memberships from the stored data and diff them with the live ones.

Streaming memberships are written incrementally, one change at a time; parity recomputes them
from scratch with the same Python evaluator and says, per difference, whether it is
*expected lag* (data landed or a window lapsed within the last `lag` seconds, so the live value
is about to catch up) or *wrong* (nothing explains it: a bug or lost work to investigate).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Max

from audiences.models import QUALIFIED, Event, Membership, Profile, SegmentDefinition
from audiences.pql import parse
from audiences.services.evaluation import evaluate_python

DEFAULT_LAG = timedelta(seconds=60)


@dataclass(frozen=True)
class Difference:
    profile_id: int
    live: bool  # is the profile a live member?
    computed: bool  # should it be, from the stored data?
    kind: str  # "expected lag" | "wrong"
    why: str


@dataclass
class DefinitionParity:
    definition: SegmentDefinition
    live: int = 0
    computed: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def wrong(self) -> int:
        return sum(1 for d in self.differences if d.kind == "wrong")

    @property
    def lagging(self) -> int:
        return sum(1 for d in self.differences if d.kind == "expected lag")


def parity_check(*, now: datetime, segment_ids: list[str] | None = None,
                 lag: timedelta = DEFAULT_LAG) -> list[DefinitionParity]:
    """Parity of every published streaming definition (or of `segment_ids`) at `now`."""
    definitions = SegmentDefinition.objects.filter(
        evaluation_continuous=True, lifecycle_state=SegmentDefinition.Lifecycle.PUBLISHED,
    ).select_related("merge_policy").order_by("name")
    if segment_ids:
        definitions = definitions.filter(pk__in=segment_ids)
    return [_definition_parity(definition, now=now, lag=lag) for definition in definitions]


def _definition_parity(definition: SegmentDefinition, *, now: datetime, lag: timedelta
                       ) -> DefinitionParity:
    query = parse(definition.expression)
    computed = set(evaluate_python(query=query, merge_policy=definition.merge_policy, now=now))
    live_rows = dict(Membership.objects.filter(definition=definition, status__in=QUALIFIED)
                     .values_list("profile_id", "recheck_at"))
    report = DefinitionParity(definition=definition, live=len(live_rows), computed=len(computed))
    suspects = computed.symmetric_difference(live_rows)
    fresh = _recently_changed(suspects, since=now - lag, policy=definition.merge_policy)
    for profile_id in sorted(suspects):
        live = profile_id in live_rows
        recheck = live_rows.get(profile_id)
        if live and recheck is not None and recheck <= now and recheck > now - lag:
            kind, why = "expected lag", f"its time window lapsed at {recheck:%H:%M:%S}"
        elif profile_id in fresh:
            kind, why = "expected lag", f"its data changed at {fresh[profile_id]:%H:%M:%S}"
        else:
            kind = "wrong"
            why = ("live member, but the stored data does not qualify" if live
                   else "qualifies from the stored data, but is not a live member")
        report.differences.append(Difference(profile_id, live, not live, kind, why))
    return report


def _recently_changed(profile_ids: set[int], *, since: datetime, policy) -> dict[int, datetime]:
    """Profiles (of `profile_ids`) whose attributes or events landed after `since`."""
    if not profile_ids:
        return {}
    profiles = list(Profile.objects.filter(pk__in=profile_ids)
                    .values_list("pk", "entity_id", "updated_at"))
    changed = {pk: at for pk, _, at in profiles if at >= since}
    key = "cluster_id" if policy.stitches else "identity_id"
    entity_to_pk = {entity: pk for pk, entity, _ in profiles}
    landed = (Event.objects.filter(**{f"{key}__in": list(entity_to_pk)}, ingested_at__gte=since)
              .values(key).annotate(last=Max("ingested_at")).values_list(key, "last"))
    for entity, at in landed:
        pk = entity_to_pk[entity]
        changed[pk] = max(at, changed.get(pk, at))
    return changed
