"""Schedules and their firings: save, pause, resume, remove, list, and the statements of the
schedules loop — take the due schedules, record a firing under its fire key, advance.

They run in the caller's transaction (one tick is one). Exactly-once firing rests on two
statements: :func:`take_due_schedules` locks the due rows (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL: two workers never handle one schedule at once), and :func:`record_firing` inserts
into ``zart_schedule_firings``, whose primary key ``(schedule_name, fire_at)`` is the fire key:
of any number of workers firing one time, exactly one insert succeeds, whatever the locks did.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, delete, exists, func, select, tuple_, update

from zart.models import (
    CatchupPolicy,
    ExecutionRow,
    OverlapPolicy,
    ScheduleFiringRow,
    ScheduleRow,
    table_of,
)
from zart.repositories import rows
from zart.repositories.executions import get_execution
from zart.repositories.executors import Backend, Operation, reads
from zart.repositories.records import ExecutionRecord, ScheduleFiring, ScheduleRecord
from zart.repositories.statements import Statement, upsert

schedules = table_of(ScheduleRow)
firings = table_of(ScheduleFiringRow)
executions = table_of(ExecutionRow)

_SAVED = (
    "task_name",
    "cron",
    "timezone",
    "payload",
    "overlap_policy",
    "catchup_policy",
    "next_fire_at",
    "created_at",
    "updated_at",
)


def _save(dialect: str) -> Any:
    insert = upsert(schedules, dialect).values(
        name=bindparam("name"),
        paused=False,
        **{c: bindparam(c, type_=schedules.c[c].type) for c in _SAVED},
    )
    new = insert.excluded
    rule_changed = (schedules.c.cron != new.cron) | (schedules.c.timezone != new.timezone)
    return insert.on_conflict_do_update(
        index_elements=["name"],
        set_={
            "task_name": new.task_name,
            "cron": new.cron,
            "timezone": new.timezone,
            "payload": new.payload,
            "overlap_policy": new.overlap_policy,
            "catchup_policy": new.catchup_policy,
            "next_fire_at": case((rule_changed, new.next_fire_at), else_=schedules.c.next_fire_at),
            "updated_at": new.updated_at,
        },
    ).returning(*schedules.c)


def _named() -> Any:
    return schedules.c.name == bindparam("name")


def _now() -> Any:
    return bindparam("now", type_=schedules.c.updated_at.type)


SAVE = Statement("save_schedule", _save)
GET = Statement("get_schedule", lambda _d: select(schedules).where(_named()))
GET_LOCKED = Statement(
    "get_schedule_locked", lambda _d: select(schedules).where(_named()).with_for_update()
)
LIST = Statement("list_schedules", lambda _d: select(schedules).order_by(schedules.c.name))
PAUSE = Statement(
    "pause_schedule",
    lambda _d: (
        update(schedules)
        .where(_named())
        .values(paused=True, updated_at=_now())
        .returning(*schedules.c)
    ),
)
RESUME = Statement(
    "resume_schedule",
    lambda _d: (
        update(schedules)
        .where(_named(), schedules.c.paused.is_(True))
        .values(
            paused=False,
            next_fire_at=bindparam("next_fire_at", type_=schedules.c.next_fire_at.type),
            updated_at=_now(),
        )
        .returning(*schedules.c)
    ),
)
REMOVE = Statement(
    "remove_schedule",
    lambda _d: delete(schedules).where(_named()).returning(schedules.c.name),
)
TAKE_DUE = Statement(
    "take_due_schedules",
    lambda _d: (
        select(schedules)
        .where(
            schedules.c.paused.is_(False),
            schedules.c.next_fire_at <= bindparam("now", type_=schedules.c.next_fire_at.type),
        )
        .order_by(schedules.c.next_fire_at)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
    ),
)
EARLIEST = Statement(
    "earliest_next_fire_at",
    lambda _d: select(func.min(schedules.c.next_fire_at).label("due")).where(
        schedules.c.paused.is_(False)
    ),
)
RECORD_FIRING = Statement(
    "record_firing",
    lambda d: (
        upsert(firings, d)
        .values(
            schedule_name=bindparam("schedule_name"),
            fire_at=bindparam("fire_at", type_=firings.c.fire_at.type),
            execution_id=bindparam("execution_id"),
            created_at=bindparam("now", type_=firings.c.created_at.type),
        )
        .on_conflict_do_nothing(index_elements=["schedule_name", "fire_at"])
        .returning(firings.c.schedule_name)
    ),
)
LATEST_STARTED = Statement(
    "latest_started_firing",
    lambda _d: (
        select(firings.c.execution_id)
        .where(
            firings.c.schedule_name == bindparam("schedule_name"),
            firings.c.execution_id.is_not(None),
        )
        .order_by(firings.c.fire_at.desc())
        .limit(1)
    ),
)
MARK_FIRE_TIME = Statement(
    "mark_fire_time",
    lambda _d: (
        update(executions)
        .where(executions.c.execution_id == bindparam("execution_id"))
        .values(fire_time=bindparam("fire_time", type_=executions.c.fire_time.type))
    ),
)
ADVANCE = Statement(
    "advance_schedule",
    lambda _d: (
        update(schedules)
        .where(_named())
        .values(
            next_fire_at=bindparam("next_fire_at", type_=schedules.c.next_fire_at.type),
            # the latest fire time that fired, when one did
            last_fire_at=func.coalesce(
                bindparam("last_fire_at", type_=schedules.c.last_fire_at.type),
                schedules.c.last_fire_at,
            ),
            updated_at=_now(),
        )
    ),
)
FIRINGS = Statement(
    "list_firings",
    lambda _d: (
        select(firings)
        .where(firings.c.schedule_name == bindparam("schedule_name"))
        .order_by(firings.c.fire_at.desc())
        .limit(bindparam("limit"))
    ),
)


def _prune_firings(_dialect: str) -> Any:
    """The ``:limit`` oldest firings before ``:before``, except each schedule's latest that
    started an execution (the overlap policy looks at it) while the schedule exists."""
    newer = firings.alias("newer")
    superseded = exists().where(
        newer.c.schedule_name == firings.c.schedule_name,
        newer.c.fire_at > firings.c.fire_at,
        newer.c.execution_id.is_not(None),
    )
    removed = ~exists().where(schedules.c.name == firings.c.schedule_name)
    doomed = (
        select(firings.c.schedule_name, firings.c.fire_at)
        .where(
            firings.c.fire_at < bindparam("before", type_=firings.c.fire_at.type),
            firings.c.execution_id.is_(None) | superseded | removed,
        )
        .order_by(firings.c.fire_at)
        .limit(bindparam("limit"))
    )
    return (
        delete(firings)
        .where(tuple_(firings.c.schedule_name, firings.c.fire_at).in_(doomed))
        .returning(firings.c.schedule_name)
    )


PRUNE_FIRINGS = Statement("prune_firings", _prune_firings)


# ---------------------------------------------------------------------------------------------
# Control plane


def save_schedule(
    backend: Backend,
    *,
    name: str,
    task_name: str,
    cron: str,
    timezone: str,
    payload: Any,
    overlap: OverlapPolicy,
    catchup: CatchupPolicy,
    next_fire_at: datetime,
    now: datetime,
) -> Operation[ScheduleRecord]:
    """Create the schedule ``name`` or update it in place.

    An update never changes ``paused`` (a handler-declared schedule synced at every worker
    start stays paused if an operator paused it) and keeps ``next_fire_at`` unless the cron
    expression or the time zone changed: a worker restarted after downtime still sees the fire
    times it missed, and its catch-up policy decides what to do with them.
    """
    found = yield (
        SAVE,
        {
            "name": name,
            "task_name": task_name,
            "cron": cron,
            "timezone": timezone,
            "payload": payload,
            "overlap_policy": overlap.value,
            "catchup_policy": catchup.value,
            "next_fire_at": next_fire_at,
            "created_at": now,
            "updated_at": now,
        },
    )
    return rows.schedule(found[0])


@reads
def get_schedule(
    backend: Backend, name: str, *, lock: bool = False
) -> Operation[ScheduleRecord | None]:
    """The schedule ``name`` (``None``: no such schedule); ``lock`` holds its row for the rest
    of the transaction (PostgreSQL; SQLite's writing transactions are exclusive anyway)."""
    found = yield (GET_LOCKED if lock else GET), {"name": name}
    return rows.schedule(found[0]) if found else None


@reads
def list_schedules(backend: Backend) -> Operation[list[ScheduleRecord]]:
    """Every schedule, by name."""
    return [rows.schedule(r) for r in (yield LIST, {})]


def pause_schedule(
    backend: Backend, name: str, *, now: datetime
) -> Operation[ScheduleRecord | None]:
    """Stop firing ``name`` until resumed (``None``: no such schedule). Idempotent."""
    found = yield PAUSE, {"name": name, "now": now}
    return rows.schedule(found[0]) if found else None


def resume_schedule(
    backend: Backend, name: str, *, next_fire_at: datetime, now: datetime
) -> Operation[ScheduleRecord | None]:
    """Fire ``name`` again from ``next_fire_at`` on: the fire times that passed while it was
    paused are not caught up. A schedule that is not paused is left as it is (so resuming it
    cannot drop a catch-up that is due). ``None``: no such schedule."""
    found = yield RESUME, {"name": name, "next_fire_at": next_fire_at, "now": now}
    if found:
        return rows.schedule(found[0])
    return (yield from get_schedule(backend, name))


def remove_schedule(backend: Backend, name: str) -> Operation[bool]:
    """Delete ``name`` (the executions it started are kept, and its firing history until
    :func:`prune_firings` takes it). True when there was such a schedule."""
    return bool((yield REMOVE, {"name": name}))


# ---------------------------------------------------------------------------------------------
# The schedules loop


def take_due_schedules(
    backend: Backend, *, now: datetime, limit: int
) -> Operation[list[ScheduleRecord]]:
    """Lock and return up to ``limit`` unpaused schedules whose ``next_fire_at`` has come.

    Safe with many workers: on PostgreSQL ``FOR UPDATE SKIP LOCKED`` hands each due schedule
    to one transaction and lets the others pass it by (they see it again, advanced, once the
    holder commits); on SQLite the transaction began with ``BEGIN IMMEDIATE``. The fire key
    (:func:`record_firing`) would stop a double firing even without these locks.
    """
    return [rows.schedule(r) for r in (yield TAKE_DUE, {"now": now, "limit": limit})]


@reads
def earliest_next_fire_at(backend: Backend) -> Operation[datetime | None]:
    """When the next unpaused schedule is due (``None``: none is): how long the loop sleeps."""
    found = yield EARLIEST, {}
    value: datetime | None = found[0]["due"] if found else None
    return value


def record_firing(
    backend: Backend,
    *,
    schedule_name: str,
    fire_at: datetime,
    execution_id: str | None,
    now: datetime,
) -> Operation[bool]:
    """Claim the fire key ``(schedule_name, fire_at)``: True for exactly one caller of all
    that try. ``ON CONFLICT DO NOTHING`` makes the losers insert nothing (on PostgreSQL a
    loser racing an uncommitted winner waits for its commit, then inserts nothing) and keeps
    their transactions usable."""
    found = yield (
        RECORD_FIRING,
        {
            "schedule_name": schedule_name,
            "fire_at": fire_at,
            "execution_id": execution_id,
            "now": now,
        },
    )
    return bool(found)


def previous_execution(backend: Backend, schedule_name: str) -> Operation[ExecutionRecord | None]:
    """The execution started by the schedule's latest firing that started one (skipped
    firings started none): what the overlap policy looks at."""
    found = yield LATEST_STARTED, {"schedule_name": schedule_name}
    if not found:
        return None
    return (yield from get_execution(backend, found[0]["execution_id"]))


def mark_fire_time(backend: Backend, execution_id: str, fire_time: datetime) -> Operation[None]:
    """Stamp a just-created execution with the fire time that started it
    (``zart.context().fire_time``)."""
    yield MARK_FIRE_TIME, {"execution_id": execution_id, "fire_time": fire_time}


def advance_schedule(
    backend: Backend,
    name: str,
    *,
    next_fire_at: datetime,
    last_fire_at: datetime | None,
    now: datetime,
) -> Operation[None]:
    """Move a schedule on to its next fire time (and record the latest one that fired)."""
    yield (
        ADVANCE,
        {
            "name": name,
            "next_fire_at": next_fire_at,
            "last_fire_at": last_fire_at,
            "now": now,
        },
    )


@reads
def list_firings(
    backend: Backend, schedule_name: str, *, limit: int = 100
) -> Operation[list[ScheduleFiring]]:
    """The schedule's latest firings, newest first."""
    found = yield FIRINGS, {"schedule_name": schedule_name, "limit": limit}
    return [rows.firing(r) for r in found]


def prune_firings(backend: Backend, *, before: datetime, limit: int = 100) -> Operation[int]:
    """Delete up to ``limit`` firings older than ``before``, oldest first; how many. Each
    schedule's latest firing that started an execution is kept as long as the schedule
    exists: overlap policies compare the next firing with it."""
    found = yield PRUNE_FIRINGS, {"before": before, "limit": limit}
    return len(found)
