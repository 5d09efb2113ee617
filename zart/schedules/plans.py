"""What a schedule is (:class:`ScheduleSpec`) and what it does at a given moment
(:func:`plan_firings`): pure functions of ``now``, which only the schedules loop reads.

Catch-up, after a time when no worker ran (``next_fire_at`` is in the past):

- ``skip``: the missed fire times are dropped; the latest one still fires if it is at most
  :data:`MISFIRE_GRACE` old (a loop that is merely a little late is not "downtime");
- ``latest``: the latest missed fire time fires once, however old; the earlier ones are dropped;
- ``all``: every missed fire time fires, oldest first, at most :data:`MAX_CATCHUP` of them (the
  latest ones); older ones are dropped and logged.

A paused schedule catches nothing up: resuming it starts from the next fire time after now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from zart.errors import InvalidName, InvalidSchedule
from zart.models.names import check_path_segment
from zart.models.statuses import CatchupPolicy, OverlapPolicy
from zart.schedules.cron import Cron, parse_cron

#: The most missed fire times ``catchup="all"`` fires at once.
MAX_CATCHUP = 100
#: How late a fire time may be and still count as on time under ``catchup="skip"``.
MISFIRE_GRACE = timedelta(seconds=60)
#: Longest schedule name: the execution id ``{name}@{fire time}`` must fit in 255 characters.
MAX_NAME_LENGTH = 200

Policy = TypeVar("Policy", OverlapPolicy, CatchupPolicy)

DEFAULT_OVERLAP = OverlapPolicy.SKIP
DEFAULT_CATCHUP = CatchupPolicy.LATEST


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """A validated schedule, before it is stored: when it fires, what it does on overlap and
    after downtime, and the payload each execution gets."""

    cron: Cron
    overlap: OverlapPolicy = DEFAULT_OVERLAP
    catchup: CatchupPolicy = DEFAULT_CATCHUP

    @classmethod
    def create(
        cls,
        cron: str,
        *,
        timezone: str = "UTC",
        overlap: OverlapPolicy | str = DEFAULT_OVERLAP,
        catchup: CatchupPolicy | str = DEFAULT_CATCHUP,
    ) -> ScheduleSpec:
        """Validate everything; :class:`InvalidSchedule` names the first problem."""
        return cls(
            cron=parse_cron(cron, timezone),
            overlap=_policy(OverlapPolicy, overlap, "overlap"),
            catchup=_policy(CatchupPolicy, catchup, "catchup"),
        )


def _policy(kind: type[Policy], value: Any, name: str) -> Policy:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(repr(p.value) for p in kind)
        raise InvalidSchedule(f"unknown {name} policy {value!r}; one of: {choices}") from None


def check_name(name: Any) -> str:
    """A schedule name: the rule of every name (:mod:`zart.models.names`), with room left for
    the fire time in the ids of the executions it starts (``{name}@{fire time}``: at most
    :data:`MAX_NAME_LENGTH` characters) and no ``/``, which would put those ids out of the HTTP
    API's reach. Raises :class:`~zart.errors.InvalidSchedule` saying why."""
    try:
        return check_path_segment(name, "schedule name", max_length=MAX_NAME_LENGTH)
    except InvalidName as exc:
        raise InvalidSchedule(str(exc)) from None


def execution_id_for(schedule: str, fire_at: datetime) -> str:
    """The execution a firing starts: ``nightly-report@2030-01-01T09:00:00Z``. Deterministic,
    so that the firing is idempotent twice over (the fire key, and ``execution_id``)."""
    instant = fire_at.astimezone(UTC)
    text = instant.strftime("%Y-%m-%dT%H:%M:%S")
    if instant.microsecond:
        text += f".{instant.microsecond:06d}"
    return f"{schedule}@{text}Z"


@dataclass(frozen=True, slots=True)
class FiringPlan:
    """What a due schedule does now."""

    #: Fire times to fire now, oldest first.
    fire_times: tuple[datetime, ...]
    #: The earliest due fire time that will not fire (dropped by the catch-up policy), if any.
    dropped_from: datetime | None
    #: The schedule's next fire time after ``now``.
    next_fire_at: datetime


def plan_firings(
    cron: Cron, policy: CatchupPolicy, *, next_fire_at: datetime, now: datetime
) -> FiringPlan:
    """Which fire times to fire at ``now`` for a schedule due at ``next_fire_at``."""
    following = cron.next_after(now)
    if next_fire_at > now:
        return FiringPlan((), None, next_fire_at)
    # The latest fire time at or before now (the stored next_fire_at if the expression has
    # none in between, which only happens when it was stored by another rule).
    latest = max(cron.previous_before(now + timedelta(microseconds=1)), next_fire_at)
    if policy is CatchupPolicy.ALL:
        times = cron.latest_between(next_fire_at, now, MAX_CATCHUP) or [latest]
        dropped = next_fire_at if times[0] > next_fire_at else None
        return FiringPlan(tuple(times), dropped, following)
    earliest_dropped = next_fire_at if next_fire_at < latest else None
    if policy is CatchupPolicy.SKIP and now - latest > MISFIRE_GRACE:
        return FiringPlan((), next_fire_at, following)
    return FiringPlan((latest,), earliest_dropped, following)
