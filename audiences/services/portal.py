"""Read models and small writes behind the Audience Portal's browse page.

The browse list never counts memberships: it reads the counters the membership services keep on
each definition. The evaluation summary is one grouped query over definitions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.db.models import Count, Q

from audiences.models import Membership, Schedule, SegmentDefinition
from portal.errors import ErrorCode, SiftError

Definition = SegmentDefinition


@dataclass(frozen=True)
class EvaluationSummary:
    batch: int
    streaming: int
    edge: int
    batch_time: str  # "05:00 UTC" from the system schedule, "" when there is none
    scheduled: bool  # the "Schedule all audiences" toggle


def _cron_time(cron: str) -> str:
    """'0 0 5 * * ?' (Quartz: sec min hour ...) -> '05:00 UTC'."""
    parts = cron.split()
    if len(parts) >= 3 and parts[1].isdigit() and parts[2].isdigit():
        return f"{int(parts[2]):02d}:{int(parts[1]):02d} UTC"
    return cron


def system_schedule() -> Schedule | None:
    return Schedule.objects.filter(is_system=True).first()


def evaluation_summary() -> EvaluationSummary:
    """Audiences by update frequency (edge > streaming > batch), with the daily batch time."""
    evaluated = Definition.objects.exclude(origin=Definition.Origin.CUSTOM_UPLOAD)
    counts = evaluated.aggregate(
        edge=Count("pk", filter=Q(evaluation_synchronous=True)),
        streaming=Count("pk", filter=Q(evaluation_continuous=True,
                                       evaluation_synchronous=False)),
        batch=Count("pk", filter=Q(evaluation_continuous=False, evaluation_synchronous=False)))
    schedule = system_schedule()
    return EvaluationSummary(
        batch=counts["batch"], streaming=counts["streaming"], edge=counts["edge"],
        batch_time=_cron_time(schedule.schedule) if schedule else "",
        scheduled=bool(schedule and schedule.state == Schedule.State.ACTIVE))


def schedule_all_set(*, enabled: bool, user: User | None, now: datetime) -> Schedule:
    """Turn the sandbox's system schedule ("Schedule all audiences") on or off."""
    schedule = system_schedule()
    if schedule is None:
        raise SiftError(ErrorCode.NOT_FOUND, "This sandbox has no system batch schedule.")
    schedule.state = Schedule.State.ACTIVE if enabled else Schedule.State.INACTIVE
    schedule.updated_at = now
    schedule.save(update_fields=["state", "updated_at"])
    return schedule


def membership_export_rows(*, definition: SegmentDefinition) -> Iterator[list[str]]:
    """The audience's current members as CSV rows (header first), streamed in chunks."""
    yield ["identityNamespace", "identity", "status", "lastQualificationTime", "source"]
    members = (Membership.objects.filter(definition=definition, status__in=("realized",
                                                                           "existing"))
               .select_related("profile").order_by("pk"))
    for m in members.iterator(chunk_size=2000):
        yield [m.profile.primary_namespace, m.profile.primary_id, m.status,
               m.last_qualification_time.isoformat(), m.source]
