"""Pause rules: create, list and remove them, hold an execution on one, release its holds.

A step that matches an active rule does not start: its run records a *hold* (a timer named
after the rule, :func:`hold_name`, firing at the rule's expiry or at the next re-check) and
suspends; the execution waits like any other. Removing the rule moves its holds' timers to now
and wakes the executions that wait on them.

The hold is written only while the rule is still active, reading the rule row ``FOR SHARE``
(PostgreSQL; SQLite serializes writers anyway), and removal updates that row first. So a hold
and a removal are ordered: either the hold committed first and the removal sees (and
releases) it, or the removal committed first and the hold writes nothing (the step runs).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, literal, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from zart.models import ExecutionRow, ExecutionStatus, PauseRuleRow, TimerKind, TimerRow, table_of
from zart.repositories.records import PauseRuleRecord

rules = table_of(PauseRuleRow)
timers = table_of(TimerRow)
executions = table_of(ExecutionRow)

HOLD_PREFIX = "zart:pause:"


def hold_name(rule_id: str) -> str:
    """The name of the timer that holds an execution on rule ``rule_id``."""
    return f"{HOLD_PREFIX}{rule_id}"


def _record(row: Row[Any]) -> PauseRuleRecord:
    m = row._mapping
    return PauseRuleRecord(
        rule_id=m["rule_id"],
        execution_id=m["execution_id"],
        task_name=m["task_name"],
        step_pattern=m["step_pattern"],
        reason=m["reason"],
        triggered_by=m["triggered_by"],
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        deleted_at=m["deleted_at"],
        deleted_by=m["deleted_by"],
    )


async def create_rule(
    conn: AsyncConnection,
    *,
    rule_id: str,
    execution_id: str | None,
    task_name: str | None,
    step_pattern: str | None,
    reason: str | None,
    triggered_by: str | None,
    expires_at: datetime | None,
    now: datetime,
) -> PauseRuleRecord:
    row = (
        await conn.execute(
            rules.insert()
            .values(
                rule_id=rule_id,
                execution_id=execution_id,
                task_name=task_name,
                step_pattern=step_pattern,
                reason=reason,
                triggered_by=triggered_by,
                created_at=now,
                expires_at=expires_at,
            )
            .returning(*rules.c)
        )
    ).one()
    return _record(row)


def _active(now: datetime) -> list[Any]:
    return [
        rules.c.deleted_at.is_(None),
        or_(rules.c.expires_at.is_(None), rules.c.expires_at > now),
    ]


async def list_rules(
    conn: AsyncConnection, *, now: datetime, include_inactive: bool = False
) -> list[PauseRuleRecord]:
    """The active rules (or every rule ever made, with ``include_inactive``), oldest first."""
    query = select(rules).order_by(rules.c.created_at, rules.c.rule_id)
    if not include_inactive:
        query = query.where(*_active(now))
    return [_record(r) for r in await conn.execute(query)]


async def remove_rule(
    conn: AsyncConnection, rule_id: str, *, now: datetime, removed_by: str | None
) -> PauseRuleRecord | None:
    """Soft-delete an active rule (the row stays for the audit trail); ``None`` when there is
    no active rule ``rule_id``. Updating the row first is what orders it against a hold."""
    row = (
        await conn.execute(
            update(rules)
            .where(rules.c.rule_id == rule_id, *_active(now))
            .values(deleted_at=now, deleted_by=removed_by)
            .returning(*rules.c)
        )
    ).first()
    return None if row is None else _record(row)


async def hold_execution(
    conn: AsyncConnection,
    *,
    rule_id: str,
    execution_id: str,
    run_id: str,
    fire_at: datetime,
    now: datetime,
) -> bool:
    """Record that the run waits on rule ``rule_id`` until ``fire_at``; False (nothing
    written) when the rule is no longer active. Safe against a concurrent removal: the rule
    row is read ``FOR SHARE``, so a removal either committed before (no row qualifies) or
    waits for this transaction (and then releases the hold written here)."""
    values = select(
        literal(execution_id, type_=timers.c.execution_id.type),
        literal(run_id, type_=timers.c.run_id.type),
        literal(hold_name(rule_id), type_=timers.c.name.type),
        literal(TimerKind.SLEEP.value, type_=timers.c.kind.type),
        bindparam("fire_at", fire_at, type_=timers.c.fire_at.type),
        bindparam("created_at", now, type_=timers.c.created_at.type),
    ).where(rules.c.rule_id == rule_id, *_active(now))
    row = (
        await conn.execute(
            timers.insert()
            .from_select(
                ["execution_id", "run_id", "name", "kind", "fire_at", "created_at"],
                values.with_for_update(read=True),
            )
            .returning(timers.c.timer_id)
        )
    ).first()
    return row is not None


async def release_holds(conn: AsyncConnection, rule_id: str, *, now: datetime) -> list[str]:
    """Make every pending hold on rule ``rule_id`` due now and wake the executions waiting on
    one; returns the task names woken (to notify their workers). An execution still running
    when its hold is released picks the due timer up when it suspends."""
    held = await conn.execute(
        update(timers)
        .where(timers.c.name == hold_name(rule_id), timers.c.fired_at.is_(None))
        .values(fire_at=now)
        .returning(timers.c.execution_id)
    )
    execution_ids = sorted({r.execution_id for r in held})
    if not execution_ids:
        return []
    woken = await conn.execute(
        update(executions)
        .where(
            executions.c.execution_id.in_(execution_ids),
            executions.c.status == ExecutionStatus.WAITING.value,
            or_(executions.c.claimable_at.is_(None), executions.c.claimable_at > now),
        )
        .values(claimable_at=now, version=executions.c.version + 1)
        .returning(executions.c.task_name)
    )
    return sorted({r.task_name for r in woken})
