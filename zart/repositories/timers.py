"""Timers: durable wake-ups. Creating one lowers its execution's ``claimable_at`` when the
execution waits; firing marks the due timers of a run consumed (the claim does it, see
:mod:`.claims`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, or_, select, update

from zart.models import (
    ExecutionRow,
    ExecutionStatus,
    StepKind,
    StepRow,
    StepStatus,
    TimerKind,
    TimerRow,
    table_of,
)
from zart.repositories import rows
from zart.repositories.executors import Backend, Operation, reads
from zart.repositories.records import TimerRecord
from zart.repositories.statements import Statement, one_of

timers = table_of(TimerRow)
executions = table_of(ExecutionRow)
steps = table_of(StepRow)


def due_timers_fired(runs: ColumnElement[bool], due: Any = None, fired_at: Any = None) -> Any:
    """The UPDATE that marks the pending timers of the runs ``runs`` selects that are due by
    ``due`` (default: ``:now``) as fired at ``fired_at`` (default: ``:now``). Part of the
    claim (:mod:`.claims`) and of :data:`FIRE_DUE`."""
    now = bindparam("now", type_=timers.c.fired_at.type)
    return (
        update(timers)
        .where(runs, timers.c.fired_at.is_(None), timers.c.fire_at <= (now if due is None else due))
        .values(fired_at=now if fired_at is None else fired_at)
    )


def _inserted() -> Any:
    return timers.insert().values(
        execution_id=bindparam("execution_id"),
        run_id=bindparam("run_id"),
        name=bindparam("name"),
        kind=bindparam("kind"),
        fire_at=bindparam("fire_at", type_=timers.c.fire_at.type),
        created_at=bindparam("created_at", type_=timers.c.created_at.type),
    )


def _lowered() -> Any:
    """A waiting execution becomes claimable at the new timer when that is sooner."""
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


def _create(dialect: str) -> Any:
    """PostgreSQL: the insert and the lowered wake-up in one statement (CTEs)."""
    if dialect != "postgresql":
        return _inserted()
    inserted = _inserted().returning(timers.c.timer_id).cte("inserted")
    lowered = _lowered().returning(executions.c.execution_id).cte("lowered")
    return select(inserted.c.timer_id).add_cte(lowered)


CREATE = Statement("create_timer", _create)
LOWER_WAKE_UP = Statement("lower_wake_up", lambda _d: _lowered())
FIRE_DUE = Statement(
    "fire_due_timers",
    lambda d: due_timers_fired(one_of(timers.c.run_id, "run_ids", d)).returning(timers.c.timer_id),
)
CANCEL = Statement(
    "cancel_timer",
    lambda _d: (
        update(timers)
        .where(
            timers.c.run_id == bindparam("run_id"),
            timers.c.name == bindparam("name"),
            timers.c.fired_at.is_(None),
        )
        .values(fired_at=bindparam("now", type_=timers.c.fired_at.type))
    ),
)
SLEEP_NOW = Statement(
    "sleep_brought_forward",
    lambda _d: (
        update(timers)
        .where(
            timers.c.run_id == bindparam("run_id"),
            timers.c.name == bindparam("name"),
            timers.c.kind == TimerKind.SLEEP.value,
            timers.c.fired_at.is_(None),
        )
        .values(fire_at=bindparam("now", type_=timers.c.fire_at.type))
        .returning(timers.c.timer_id)
    ),
)
SLEEP_STEP_NOW = Statement(
    "sleep_step_due",
    lambda _d: (
        update(steps)
        .where(
            steps.c.run_id == bindparam("run_id"),
            steps.c.name == bindparam("name"),
            steps.c.kind == StepKind.SLEEP.value,
            steps.c.status == StepStatus.WAITING.value,
        )
        .values(
            wake_at=bindparam("now", type_=steps.c.wake_at.type),
            updated_at=bindparam("now", type_=steps.c.updated_at.type),
        )
        .returning(steps.c.step_id)
    ),
)
PENDING = Statement(
    "pending_timers",
    lambda _d: (
        select(timers)
        .where(timers.c.run_id == bindparam("run_id"), timers.c.fired_at.is_(None))
        .order_by(timers.c.fire_at)
    ),
)


def create_timer(
    backend: Backend,
    *,
    execution_id: str,
    run_id: str,
    name: str,
    kind: TimerKind,
    fire_at: datetime,
    now: datetime,
) -> Operation[None]:
    """Record a wake-up. A waiting execution becomes claimable at ``fire_at`` if that is
    earlier than what it waits for now; for a running execution the next suspension picks the
    earliest pending timer up (``claimable_at`` of a running row is its lease expiry, left
    alone). PostgreSQL: one statement."""
    params = {
        "execution_id": execution_id,
        "run_id": run_id,
        "name": name,
        "kind": kind.value,
        "fire_at": fire_at,
        "created_at": now,
    }
    yield CREATE, params
    if not backend.modifying_ctes:
        yield LOWER_WAKE_UP, params


def fire_due_timers(backend: Backend, run_ids: Sequence[str], *, now: datetime) -> Operation[int]:
    """Mark the pending timers of ``run_ids`` that are due at ``now`` as fired; how many.
    (On PostgreSQL the claim does it in its own statement, :mod:`.claims`.)"""
    if not run_ids:
        return 0
    return len((yield FIRE_DUE, {"run_ids": list(run_ids), "now": now}))


def cancel_timer(backend: Backend, run_id: str, name: str, *, now: datetime) -> Operation[None]:
    """Mark the pending timers of step ``name`` fired early: what they waited for happened
    (an event arrived before its deadline), so they must not wake the run again."""
    yield CANCEL, {"run_id": run_id, "name": name, "now": now}


@reads
def pending_timers(backend: Backend, run_id: str) -> Operation[list[TimerRecord]]:
    """The timers of a run that have not fired, earliest first."""
    return [rows.timer(r) for r in (yield PENDING, {"run_id": run_id})]


def bring_sleep_forward(
    backend: Backend, *, execution_id: str, run_id: str, name: str, now: datetime
) -> Operation[bool]:
    """Make the pending sleep ``name`` of ``run_id`` due now (an operator skips it): its timer
    and its step are due at ``now`` and the waiting execution becomes claimable at once (the
    claim completes a due sleep). False when the run has no such waiting sleep."""
    found = yield SLEEP_STEP_NOW, {"run_id": run_id, "name": name, "now": now}
    if not found:
        return False
    yield SLEEP_NOW, {"run_id": run_id, "name": name, "now": now}
    yield LOWER_WAKE_UP, {"execution_id": execution_id, "fire_at": now}
    return True
