"""Schedules and their firings: save, pause, resume, remove, list, and the statements of the
schedules loop — take the due schedules, record a firing under its fire key, advance.

Every function takes the caller's connection and never commits. Exactly-once firing rests on
two statements: :func:`take_due_schedules` locks the due rows (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL: two workers never handle one schedule at once), and :func:`record_firing` inserts
into ``zart_schedule_firings``, whose primary key ``(schedule_name, fire_at)`` is the fire key:
of any number of workers firing one time, exactly one insert succeeds, whatever the locks did.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from zart.models import (
    CatchupPolicy,
    ExecutionRow,
    OverlapPolicy,
    ScheduleFiringRow,
    ScheduleRow,
    table_of,
)
from zart.repositories import executions as executions_repo
from zart.repositories.dialect import insert_ignoring_conflicts, is_postgresql, upsert
from zart.repositories.records import ExecutionRecord, ScheduleFiring, ScheduleRecord

schedules = table_of(ScheduleRow)
firings = table_of(ScheduleFiringRow)
executions = table_of(ExecutionRow)


def _record(row: Row[Any]) -> ScheduleRecord:
    m = row._mapping
    return ScheduleRecord(
        name=m["name"],
        task_name=m["task_name"],
        cron=m["cron"],
        timezone=m["timezone"],
        payload=m["payload"],
        overlap=OverlapPolicy(m["overlap_policy"]),
        catchup=CatchupPolicy(m["catchup_policy"]),
        paused=bool(m["paused"]),
        next_fire_at=m["next_fire_at"],
        last_fire_at=m["last_fire_at"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


# ---------------------------------------------------------------------------------------------
# Control plane


async def save_schedule(
    conn: AsyncConnection,
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
) -> ScheduleRecord:
    """Create the schedule ``name`` or update it in place.

    An update never changes ``paused`` (a handler-declared schedule synced at every worker
    start stays paused if an operator paused it) and keeps ``next_fire_at`` unless the cron
    expression or the time zone changed: a worker restarted after downtime still sees the fire
    times it missed, and its catch-up policy decides what to do with them.
    """
    insert = upsert(conn, schedules).values(
        name=name,
        task_name=task_name,
        cron=cron,
        timezone=timezone,
        payload=payload,
        overlap_policy=overlap.value,
        catchup_policy=catchup.value,
        paused=False,
        next_fire_at=next_fire_at,
        created_at=now,
        updated_at=now,
    )
    new = insert.excluded
    rule_changed = (schedules.c.cron != new.cron) | (schedules.c.timezone != new.timezone)
    statement = insert.on_conflict_do_update(
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
    row = (await conn.execute(statement)).one()
    return _record(row)


async def get_schedule(
    conn: AsyncConnection, name: str, *, lock: bool = False
) -> ScheduleRecord | None:
    """The schedule ``name`` (``None``: no such schedule); ``lock`` holds its row for the rest
    of the transaction (PostgreSQL; SQLite's writing transactions are exclusive anyway)."""
    statement = select(schedules).where(schedules.c.name == name)
    if lock and is_postgresql(conn):
        statement = statement.with_for_update()
    row = (await conn.execute(statement)).first()
    return None if row is None else _record(row)


async def list_schedules(conn: AsyncConnection) -> list[ScheduleRecord]:
    """Every schedule, by name."""
    rows = await conn.execute(select(schedules).order_by(schedules.c.name))
    return [_record(row) for row in rows]


async def pause_schedule(
    conn: AsyncConnection, name: str, *, now: datetime
) -> ScheduleRecord | None:
    """Stop firing ``name`` until resumed (``None``: no such schedule). Idempotent."""
    row = (
        await conn.execute(
            update(schedules)
            .where(schedules.c.name == name)
            .values(paused=True, updated_at=now)
            .returning(*schedules.c)
        )
    ).first()
    return None if row is None else _record(row)


async def resume_schedule(
    conn: AsyncConnection, name: str, *, next_fire_at: datetime, now: datetime
) -> ScheduleRecord | None:
    """Fire ``name`` again from ``next_fire_at`` on: the fire times that passed while it was
    paused are not caught up. A schedule that is not paused is left as it is (so resuming it
    cannot drop a catch-up that is due). ``None``: no such schedule."""
    row = (
        await conn.execute(
            update(schedules)
            .where(schedules.c.name == name, schedules.c.paused.is_(True))
            .values(paused=False, next_fire_at=next_fire_at, updated_at=now)
            .returning(*schedules.c)
        )
    ).first()
    if row is not None:
        return _record(row)
    return await get_schedule(conn, name)


async def remove_schedule(conn: AsyncConnection, name: str) -> bool:
    """Delete ``name`` and its firing history (the executions it started are kept). True
    when there was such a schedule."""
    result = await conn.execute(
        delete(schedules).where(schedules.c.name == name).returning(schedules.c.name)
    )
    # The firings go with it: ON DELETE CASCADE (SQLite connections enable foreign keys).
    return result.first() is not None


# ---------------------------------------------------------------------------------------------
# The schedules loop


async def take_due_schedules(
    conn: AsyncConnection, *, now: datetime, limit: int
) -> list[ScheduleRecord]:
    """Lock and return up to ``limit`` unpaused schedules whose ``next_fire_at`` has come.

    Safe with many workers: on PostgreSQL ``FOR UPDATE SKIP LOCKED`` hands each due schedule
    to one transaction and lets the others pass it by (they see it again, advanced, once the
    holder commits); on SQLite the transaction began with ``BEGIN IMMEDIATE``. The fire key
    (:func:`record_firing`) would stop a double firing even without these locks.
    """
    statement = (
        select(schedules)
        .where(schedules.c.paused.is_(False), schedules.c.next_fire_at <= now)
        .order_by(schedules.c.next_fire_at)
        .limit(limit)
    )
    if is_postgresql(conn):
        statement = statement.with_for_update(skip_locked=True)
    return [_record(row) for row in await conn.execute(statement)]


async def earliest_next_fire_at(conn: AsyncConnection) -> datetime | None:
    """When the next unpaused schedule is due (``None``: none is): how long the loop sleeps."""
    value: datetime | None = await conn.scalar(
        select(func.min(schedules.c.next_fire_at)).where(schedules.c.paused.is_(False))
    )
    return value


async def record_firing(
    conn: AsyncConnection,
    *,
    schedule_name: str,
    fire_at: datetime,
    execution_id: str | None,
    now: datetime,
) -> bool:
    """Claim the fire key ``(schedule_name, fire_at)``: True for exactly one caller of all
    that try. ``ON CONFLICT DO NOTHING`` makes the losers insert nothing (on PostgreSQL a
    loser racing an uncommitted winner waits for its commit, then inserts nothing) and keeps
    their transactions usable."""
    row = (
        await conn.execute(
            insert_ignoring_conflicts(conn, firings, ["schedule_name", "fire_at"])
            .values(
                schedule_name=schedule_name,
                fire_at=fire_at,
                execution_id=execution_id,
                created_at=now,
            )
            .returning(firings.c.schedule_name)
        )
    ).first()
    return row is not None


async def previous_execution(conn: AsyncConnection, schedule_name: str) -> ExecutionRecord | None:
    """The execution started by the schedule's latest firing that started one (skipped
    firings started none): what the overlap policy looks at."""
    execution_id = await conn.scalar(
        select(firings.c.execution_id)
        .where(firings.c.schedule_name == schedule_name, firings.c.execution_id.is_not(None))
        .order_by(firings.c.fire_at.desc())
        .limit(1)
    )
    if execution_id is None:
        return None
    return await executions_repo.get_execution(conn, execution_id)


async def mark_fire_time(conn: AsyncConnection, execution_id: str, fire_time: datetime) -> None:
    """Stamp a just-created execution with the fire time that started it
    (``zart.context().fire_time``)."""
    await conn.execute(
        update(executions)
        .where(executions.c.execution_id == execution_id)
        .values(fire_time=fire_time)
    )


async def advance_schedule(
    conn: AsyncConnection,
    name: str,
    *,
    next_fire_at: datetime,
    last_fire_at: datetime | None,
    now: datetime,
) -> None:
    """Move a schedule on to its next fire time (and record the latest one that fired)."""
    values: dict[str, Any] = {"next_fire_at": next_fire_at, "updated_at": now}
    if last_fire_at is not None:
        values["last_fire_at"] = last_fire_at
    await conn.execute(update(schedules).where(schedules.c.name == name).values(values))


async def list_firings(
    conn: AsyncConnection, schedule_name: str, *, limit: int = 100
) -> list[ScheduleFiring]:
    """The schedule's latest firings, newest first."""
    rows = await conn.execute(
        select(firings)
        .where(firings.c.schedule_name == schedule_name)
        .order_by(firings.c.fire_at.desc())
        .limit(limit)
    )
    return [ScheduleFiring(r.schedule_name, r.fire_at, r.execution_id, r.created_at) for r in rows]
