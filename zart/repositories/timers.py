"""Timers: durable wake-ups. Creating one lowers its execution's ``claimable_at`` when the
execution waits; firing marks the due timers of a run consumed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from zart.models import ExecutionRow, ExecutionStatus, TimerKind, TimerRow, table_of
from zart.repositories import raw
from zart.repositories.records import TimerRecord

timers = table_of(TimerRow)
executions = table_of(ExecutionRow)


def _record(row: Row[Any]) -> TimerRecord:
    m = row._mapping
    return TimerRecord(
        timer_id=m["timer_id"],
        execution_id=m["execution_id"],
        run_id=m["run_id"],
        name=m["name"],
        kind=TimerKind(m["kind"]),
        fire_at=m["fire_at"],
        fired_at=m["fired_at"],
    )


async def create_timer(
    conn: AsyncConnection,
    *,
    execution_id: str,
    run_id: str,
    name: str,
    kind: TimerKind,
    fire_at: datetime,
    now: datetime,
) -> TimerRecord:
    """Record a wake-up. A waiting execution becomes claimable at ``fire_at`` if that is earlier
    than what it waits for now; for a running execution the next suspension picks the earliest
    pending timer up (``claimable_at`` of a running row is its lease expiry, left alone)."""
    row = (
        await conn.execute(
            timers.insert()
            .values(
                execution_id=execution_id,
                run_id=run_id,
                name=name,
                kind=kind.value,
                fire_at=fire_at,
                created_at=now,
            )
            .returning(*timers.c)
        )
    ).one()
    await conn.execute(
        update(executions)
        .where(
            executions.c.execution_id == execution_id,
            executions.c.status == ExecutionStatus.WAITING.value,
            or_(executions.c.claimable_at.is_(None), executions.c.claimable_at > fire_at),
        )
        .values(claimable_at=fire_at)
    )
    return _record(row)


async def create_timer_driver(
    session: Any,
    *,
    execution_id: str,
    run_id: str,
    name: str,
    kind: TimerKind,
    fire_at: datetime,
    now: datetime,
) -> None:
    """:func:`create_timer` on a PostgreSQL driver connection, inside the caller's transaction:
    one statement (the insert and the wake-up time of a waiting execution, as CTEs)."""
    statement = raw.compiled(
        "create_timer", _create_timer_statement_pg, session.dialect, session.schema_map
    )
    await statement.fetch(
        session.connection,
        {
            "execution_id": execution_id,
            "run_id": run_id,
            "name": name,
            "kind": kind.value,
            "fire_at": fire_at,
            "created_at": now,
        },
    )


def _create_timer_statement_pg() -> Any:
    fire_at = bindparam("fire_at", type_=timers.c.fire_at.type)
    inserted = (
        timers.insert()
        .values(
            execution_id=bindparam("execution_id"),
            run_id=bindparam("run_id"),
            name=bindparam("name"),
            kind=bindparam("kind"),
            fire_at=fire_at,
            created_at=bindparam("created_at", type_=timers.c.created_at.type),
        )
        .returning(timers.c.timer_id)
        .cte("inserted")
    )
    lowered = (
        update(executions)
        .where(
            executions.c.execution_id == bindparam("execution_id"),
            executions.c.status == ExecutionStatus.WAITING.value,
            or_(executions.c.claimable_at.is_(None), executions.c.claimable_at > fire_at),
        )
        .values(claimable_at=fire_at)
        .returning(executions.c.execution_id)
        .cte("lowered")
    )
    return select(inserted.c.timer_id).add_cte(lowered)


async def fire_due_timers(
    conn: AsyncConnection, run_ids: Sequence[str], *, now: datetime
) -> list[TimerRecord]:
    """Mark the pending timers of ``run_ids`` that are due at ``now`` as fired; returns them.
    The worker does the same, in its claim, for the runs a wake-up brought back (on SQLite
    :func:`fire_due_timers_sqlite`; on PostgreSQL :func:`due_timers_fired` in the claim's
    statement)."""
    if not run_ids:
        return []
    rows = await conn.execute(
        due_timers_fired(timers.c.run_id.in_(list(run_ids))).returning(*timers.c), {"now": now}
    )
    return [_record(r) for r in rows]


def fire_due_timers_sqlite(session: Any, run_ids: Sequence[str], *, now: datetime) -> int:
    """:func:`fire_due_timers` on SQLite's writer connection (in its transaction)."""
    if not run_ids:
        return 0
    statement = raw.compiled(
        "fire_due_timers",
        lambda: due_timers_fired(raw.in_json_list(timers.c.run_id, "run_ids")).returning(
            timers.c.timer_id
        ),
        session.dialect,
        None,
    )
    return len(statement.run(session.connection, {"run_ids": raw.json_list(run_ids), "now": now}))


def due_timers_fired(runs: ColumnElement[bool], due: Any = None, fired_at: Any = None) -> Any:
    """The UPDATE that marks the pending timers of the runs ``runs`` selects that are due by
    ``due`` (default: ``:now``) as fired at ``fired_at`` (default: ``:now``). Shared by
    :func:`fire_due_timers_sqlite`, the worker's waking claim and its claim ahead on
    PostgreSQL."""
    now = bindparam("now", type_=timers.c.fired_at.type)
    return (
        update(timers)
        .where(runs, timers.c.fired_at.is_(None), timers.c.fire_at <= (now if due is None else due))
        .values(fired_at=now if fired_at is None else fired_at)
    )


def create_timer_sqlite(
    session: Any,
    *,
    execution_id: str,
    run_id: str,
    name: str,
    kind: TimerKind,
    fire_at: datetime,
    now: datetime,
) -> None:
    """:func:`create_timer` on SQLite's writer connection (in its transaction)."""
    params = {
        "execution_id": execution_id,
        "run_id": run_id,
        "name": name,
        "kind": kind.value,
        "fire_at": fire_at,
        "created_at": now,
    }
    insert = raw.compiled("create_timer", _insert_timer_statement, session.dialect, None)
    insert.run(session.connection, params)
    lower = raw.compiled("lower_wake_up", _lower_wake_up_statement, session.dialect, None)
    lower.run(session.connection, params)


def _insert_timer_statement() -> Any:
    return timers.insert().values(
        execution_id=bindparam("execution_id"),
        run_id=bindparam("run_id"),
        name=bindparam("name"),
        kind=bindparam("kind"),
        fire_at=bindparam("fire_at", type_=timers.c.fire_at.type),
        created_at=bindparam("created_at", type_=timers.c.created_at.type),
    )


def _lower_wake_up_statement() -> Any:
    fire_at = bindparam("fire_at", type_=executions.c.claimable_at.type)
    return (
        update(executions)
        .where(
            executions.c.execution_id == bindparam("execution_id"),
            executions.c.status == ExecutionStatus.WAITING.value,
            or_(executions.c.claimable_at.is_(None), executions.c.claimable_at > fire_at),
        )
        .values(claimable_at=fire_at)
    )


async def cancel_timer(conn: AsyncConnection, run_id: str, name: str, *, now: datetime) -> None:
    """Mark the pending timers of step ``name`` fired early: what they waited for happened
    (an event arrived before its deadline), so they must not wake the run again."""
    await conn.execute(
        update(timers)
        .where(timers.c.run_id == run_id, timers.c.name == name, timers.c.fired_at.is_(None))
        .values(fired_at=now)
    )


async def pending_timers(conn: AsyncConnection, run_id: str) -> list[TimerRecord]:
    """The timers of a run that have not fired, earliest first."""
    rows = await conn.execute(
        select(timers)
        .where(timers.c.run_id == run_id, timers.c.fired_at.is_(None))
        .order_by(timers.c.fire_at)
    )
    return [_record(r) for r in rows]
