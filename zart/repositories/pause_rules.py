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

from zart.models import ExecutionRow, ExecutionStatus, PauseRuleRow, TimerKind, TimerRow, table_of
from zart.repositories import rows
from zart.repositories.executors import Backend, Operation, reads
from zart.repositories.records import PauseRuleRecord
from zart.repositories.statements import Statement, one_of

rules = table_of(PauseRuleRow)
timers = table_of(TimerRow)
executions = table_of(ExecutionRow)

HOLD_PREFIX = "zart:pause:"

_CREATED = ("rule_id", "execution_id", "task_name", "step_pattern", "reason", "triggered_by")


def hold_name(rule_id: str) -> str:
    """The name of the timer that holds an execution on rule ``rule_id``."""
    return f"{HOLD_PREFIX}{rule_id}"


def active_conditions() -> list[Any]:
    """The conditions of an active rule (``:now`` the time of the question)."""
    return _active()


def _active() -> list[Any]:
    now = bindparam("now", type_=rules.c.expires_at.type)
    return [
        rules.c.deleted_at.is_(None),
        or_(rules.c.expires_at.is_(None), rules.c.expires_at > now),
    ]


def _hold(_dialect: str) -> Any:
    values = select(
        bindparam("execution_id", type_=timers.c.execution_id.type),
        bindparam("run_id", type_=timers.c.run_id.type),
        bindparam("name", type_=timers.c.name.type),
        literal(TimerKind.SLEEP.value, type_=timers.c.kind.type),
        bindparam("fire_at", type_=timers.c.fire_at.type),
        bindparam("now", type_=timers.c.created_at.type),
    ).where(rules.c.rule_id == bindparam("rule_id"), *_active())
    return (
        timers.insert()
        .from_select(
            ["execution_id", "run_id", "name", "kind", "fire_at", "created_at"],
            values.with_for_update(read=True),
        )
        .returning(timers.c.timer_id)
    )


CREATE = Statement(
    "create_pause_rule",
    lambda _d: (
        rules.insert()
        .values(
            **{c: bindparam(c) for c in _CREATED},
            created_at=bindparam("now", type_=rules.c.created_at.type),
            expires_at=bindparam("expires_at", type_=rules.c.expires_at.type),
        )
        .returning(*rules.c)
    ),
)
LIST_ACTIVE = Statement(
    "list_active_pause_rules",
    lambda _d: select(rules).where(*_active()).order_by(rules.c.created_at, rules.c.rule_id),
)
LIST_ALL = Statement(
    "list_pause_rules", lambda _d: select(rules).order_by(rules.c.created_at, rules.c.rule_id)
)
REMOVE = Statement(
    "remove_pause_rule",
    lambda _d: (
        update(rules)
        .where(rules.c.rule_id == bindparam("rule_id"), *_active())
        .values(
            deleted_at=bindparam("now", type_=rules.c.deleted_at.type), deleted_by=bindparam("by")
        )
        .returning(*rules.c)
    ),
)
HOLD = Statement("hold_execution", _hold)
RELEASE_HOLDS = Statement(
    "release_holds",
    lambda _d: (
        update(timers)
        .where(timers.c.name == bindparam("name"), timers.c.fired_at.is_(None))
        .values(fire_at=bindparam("now", type_=timers.c.fire_at.type))
        .returning(timers.c.execution_id)
    ),
)
WAKE_HELD = Statement(
    "wake_held",
    lambda d: (
        update(executions)
        .where(
            one_of(executions.c.execution_id, "ids", d),
            executions.c.status == ExecutionStatus.WAITING.value,
            or_(
                executions.c.claimable_at.is_(None),
                executions.c.claimable_at > bindparam("now", type_=executions.c.claimable_at.type),
            ),
        )
        .values(
            claimable_at=bindparam("now", type_=executions.c.claimable_at.type),
            version=executions.c.version + 1,
        )
        .returning(executions.c.task_name)
    ),
)


def create_rule(
    backend: Backend,
    *,
    rule_id: str,
    execution_id: str | None,
    task_name: str | None,
    step_pattern: str | None,
    reason: str | None,
    triggered_by: str | None,
    expires_at: datetime | None,
    now: datetime,
) -> Operation[PauseRuleRecord]:
    found = yield (
        CREATE,
        {
            "rule_id": rule_id,
            "execution_id": execution_id,
            "task_name": task_name,
            "step_pattern": step_pattern,
            "reason": reason,
            "triggered_by": triggered_by,
            "expires_at": expires_at,
            "now": now,
        },
    )
    return rows.pause_rule(found[0])


@reads
def list_rules(
    backend: Backend, *, now: datetime, include_inactive: bool = False
) -> Operation[list[PauseRuleRecord]]:
    """The active rules (or every rule ever made, with ``include_inactive``), oldest first."""
    found = yield (LIST_ALL if include_inactive else LIST_ACTIVE), {"now": now}
    return [rows.pause_rule(r) for r in found]


def remove_rule(
    backend: Backend, rule_id: str, *, now: datetime, removed_by: str | None
) -> Operation[PauseRuleRecord | None]:
    """Soft-delete an active rule (the row stays for the audit trail); ``None`` when there is
    no active rule ``rule_id``. Updating the row first is what orders it against a hold."""
    found = yield REMOVE, {"rule_id": rule_id, "now": now, "by": removed_by}
    return rows.pause_rule(found[0]) if found else None


def hold_execution(
    backend: Backend,
    *,
    rule_id: str,
    execution_id: str,
    run_id: str,
    fire_at: datetime,
    now: datetime,
) -> Operation[bool]:
    """Record that the run waits on rule ``rule_id`` until ``fire_at``; False (nothing
    written) when the rule is no longer active. Safe against a concurrent removal: the rule
    row is read ``FOR SHARE``, so a removal either committed before (no row qualifies) or
    waits for this transaction (and then releases the hold written here)."""
    found = yield (
        HOLD,
        {
            "rule_id": rule_id,
            "execution_id": execution_id,
            "run_id": run_id,
            "name": hold_name(rule_id),
            "fire_at": fire_at,
            "now": now,
        },
    )
    return bool(found)


def release_holds(backend: Backend, rule_id: str, *, now: datetime) -> Operation[list[str]]:
    """Make every pending hold on rule ``rule_id`` due now and wake the executions waiting on
    one; returns the task names woken (to notify their workers). An execution still running
    when its hold is released picks the due timer up when it suspends."""
    held = yield RELEASE_HOLDS, {"name": hold_name(rule_id), "now": now}
    execution_ids = sorted({r["execution_id"] for r in held})
    if not execution_ids:
        return []
    woken = yield WAKE_HELD, {"ids": execution_ids, "now": now}
    return sorted({r["task_name"] for r in woken})
