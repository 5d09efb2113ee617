"""Admin operations on stored executions: retry a failed step, start a new run (restart or
selective rerun) with some steps preserved.

Every operation locks the execution row first (``FOR UPDATE`` on PostgreSQL; SQLite's
``BEGIN IMMEDIATE`` already excludes other writers) and clears its lease token. A worker still
running the execution is fenced out by that: its checkpoints match on the token, which no
longer matches, so it cannot write into the old run, let alone the new one; its next heartbeat
or checkpoint tells it to stop.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from zart.models import (
    EventRow,
    ExecutionRow,
    ExecutionStatus,
    RunRow,
    RunTrigger,
    StepAttemptRow,
    StepKind,
    StepRow,
    StepStatus,
    table_of,
)
from zart.repositories import runs as runs_repo
from zart.repositories import steps as steps_repo
from zart.repositories.executions import get_execution
from zart.repositories.records import ExecutionRecord, RetriedStep, RunRecord, StepRecord

executions = table_of(ExecutionRow)
runs = table_of(RunRow)
steps = table_of(StepRow)
attempts = table_of(StepAttemptRow)
events = table_of(EventRow)


async def lock_execution_record(conn: AsyncConnection, execution_id: str) -> ExecutionRecord | None:
    """The execution, its row locked for the rest of the transaction (``None``: unknown)."""
    await conn.execute(
        select(executions.c.execution_id)
        .where(executions.c.execution_id == execution_id)
        .with_for_update()
    )
    return await get_execution(conn, execution_id)


def _reopened(now: datetime, **values: Any) -> dict[str, Any]:
    """An execution made claimable again with no lease: the old token fences out its holder."""
    return {
        "status": ExecutionStatus.SCHEDULED.value,
        "result": None,
        "error": None,
        "completed_at": None,
        "claimable_at": now,
        "lease_token": None,
        "lease_owner": None,
        "updated_at": now,
        "version": executions.c.version + 1,
        **values,
    }


async def retry_failed_step(
    conn: AsyncConnection,
    execution: ExecutionRecord,
    step: StepRecord,
    *,
    deadline_at: datetime | None,
    now: datetime,
) -> RetriedStep:
    """Turn the failed ``step`` of the current run back into a pending one and make the
    execution claimable: the next claim replays the run, returns every other recorded outcome
    from the store and runs ``step`` once more (its attempt history and numbering go on).

    The step's global timeout window starts afresh; the run row is reopened too.
    """
    await conn.execute(
        update(steps)
        .where(steps.c.step_id == step.step_id)
        .values(
            status=StepStatus.WAITING.value,
            wake_at=None,
            deadline_at=None,
            completed_at=None,
            updated_at=now,
        )
    )
    await conn.execute(
        update(runs)
        .where(runs.c.run_id == execution.run_id)
        .values(status=ExecutionStatus.SCHEDULED.value, result=None, error=None, completed_at=None)
    )
    await conn.execute(
        update(executions)
        .where(executions.c.execution_id == execution.execution_id)
        .values(_reopened(now, deadline_at=deadline_at))
    )
    return RetriedStep(execution.execution_id, execution.run_id, step.name, step.attempts)


async def start_new_run(
    conn: AsyncConnection,
    execution: ExecutionRecord,
    *,
    trigger: RunTrigger,
    payload: Any,
    triggered_by: str | None,
    preserved: Sequence[StepRecord],
    deadline_at: datetime | None,
    now: datetime,
) -> RunRecord:
    """Append a run to the execution's history and make it the current, claimable one.

    The current run is closed (``cancelled`` if it had not ended; a finished run keeps its
    outcome). The ``preserved`` steps of the old run are copied into the new run with their
    attempts, so its replay returns their stored outcomes; events the old run consumed in
    waits that are not preserved are offered to the new run again.
    """
    last = await conn.scalar(
        select(func.max(runs.c.run_index)).where(runs.c.execution_id == execution.execution_id)
    )
    run_index = int(last or 0) + 1
    run_id = str(uuid.uuid4())
    await conn.execute(
        update(runs)
        .where(
            runs.c.run_id == execution.run_id,
            runs.c.status.in_(
                [
                    ExecutionStatus.SCHEDULED.value,
                    ExecutionStatus.RUNNING.value,
                    ExecutionStatus.WAITING.value,
                ]
            ),
        )
        .values(status=ExecutionStatus.CANCELLED.value, completed_at=now)
    )
    await conn.execute(
        runs.insert().values(
            run_id=run_id,
            execution_id=execution.execution_id,
            run_index=run_index,
            payload=payload,
            status=ExecutionStatus.SCHEDULED.value,
            trigger=trigger.value,
            triggered_by=triggered_by,
            started_at=now,
        )
    )
    await _copy_steps(conn, preserved, run_id)
    kept_events = [s.name for s in preserved if s.kind is StepKind.EVENT]
    await conn.execute(
        update(events)
        .where(
            events.c.execution_id == execution.execution_id,
            events.c.consumed_at.is_not(None),
            events.c.name.not_in(kept_events),
        )
        .values(consumed_at=None)
    )
    await conn.execute(
        update(executions)
        .where(executions.c.execution_id == execution.execution_id)
        .values(
            _reopened(
                now,
                current_run_id=run_id,
                run_count=executions.c.run_count + 1,
                payload=payload,
                deadline_at=deadline_at,
            )
        )
    )
    found = [
        r for r in await runs_repo.list_runs(conn, execution.execution_id) if r.run_id == run_id
    ]
    return found[0]


async def _copy_steps(conn: AsyncConnection, preserved: Sequence[StepRecord], run_id: str) -> None:
    """Copy steps (and their attempts) into run ``run_id``: one insert per step, one for all
    attempts."""
    if not preserved:
        return
    history = await steps_repo.list_step_attempts(conn, [s.step_id for s in preserved])
    copied: list[dict[str, Any]] = []
    for step in preserved:
        new_id = await conn.scalar(
            steps.insert()
            .values(
                run_id=run_id,
                execution_id=step.execution_id,
                name=step.name,
                kind=step.kind.value,
                status=step.status.value,
                result=step.result,
                error=step.error,
                attempts=step.attempts,
                position=step.position,
                deadline_at=step.deadline_at,
                wake_at=step.wake_at,
                created_at=step.created_at,
                updated_at=step.updated_at,
                completed_at=step.completed_at,
            )
            .returning(steps.c.step_id)
        )
        copied.extend(
            {
                "step_id": new_id,
                "attempt_number": a.attempt_number,
                "status": a.status.value,
                "result": a.result,
                "error": a.error,
                "started_at": a.started_at,
                "completed_at": a.completed_at,
            }
            for a in history.get(step.step_id, [])
        )
    if copied:
        await conn.execute(attempts.insert(), copied)
