"""Step outcomes and their attempts: the checkpoint write and the one-query replay read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import literal, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from zart.errors import LeaseLost, NonDeterministicReplay
from zart.models import (
    AttemptStatus,
    ExecutionRow,
    JSONValue,
    StepAttemptRow,
    StepKind,
    StepRow,
    StepStatus,
    UTCDateTime,
    table_of,
)
from zart.repositories.dialect import is_postgresql, upsert
from zart.repositories.records import AttemptOutcome, Lease, StepAttemptRecord, StepRecord

executions = table_of(ExecutionRow)
steps = table_of(StepRow)
attempts = table_of(StepAttemptRow)


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What to store for one step name in one run (a first write or an update after a retry)."""

    run_id: str
    name: str
    kind: StepKind
    status: StepStatus
    position: int
    attempts: int
    result: Any = None
    error: Any = None
    deadline_at: datetime | None = None
    wake_at: datetime | None = None
    completed_at: datetime | None = None


def _record(row: Row[Any]) -> StepRecord:
    m = row._mapping
    return StepRecord(
        step_id=m["step_id"],
        run_id=m["run_id"],
        execution_id=m["execution_id"],
        name=m["name"],
        kind=StepKind(m["kind"]),
        status=StepStatus(m["status"]),
        result=m["result"],
        error=m["error"],
        attempts=m["attempts"],
        position=m["position"],
        deadline_at=m["deadline_at"],
        wake_at=m["wake_at"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        completed_at=m["completed_at"],
    )


def _attempt_record(row: Row[Any]) -> StepAttemptRecord:
    m = row._mapping
    return StepAttemptRecord(
        attempt_id=m["attempt_id"],
        step_id=m["step_id"],
        attempt_number=m["attempt_number"],
        status=AttemptStatus(m["status"]),
        result=m["result"],
        error=m["error"],
        started_at=m["started_at"],
        completed_at=m["completed_at"],
    )


_UPDATED_ON_CONFLICT = (
    "kind",
    "status",
    "result",
    "error",
    "attempts",
    "deadline_at",
    "wake_at",
    "updated_at",
    "completed_at",
)


def _step_values(outcome: StepOutcome, now: datetime) -> dict[str, Any]:
    return {
        "run_id": outcome.run_id,
        "name": outcome.name,
        "kind": outcome.kind.value,
        "status": outcome.status.value,
        "result": outcome.result,
        "error": outcome.error,
        "attempts": outcome.attempts,
        "position": outcome.position,
        "deadline_at": outcome.deadline_at,
        "wake_at": outcome.wake_at,
        "created_at": now,
        "updated_at": now,
        "completed_at": outcome.completed_at,
    }


async def record_step_outcome(
    conn: AsyncConnection,
    lease: Lease,
    outcome: StepOutcome,
    *,
    attempt: AttemptOutcome | None = None,
    now: datetime,
) -> StepRecord:
    """Store a step's outcome (and the attempt that produced it), fenced by ``lease``.

    Raises :class:`LeaseLost`, having written nothing, when the lease token no longer matches.

    PostgreSQL: one statement, so a checkpoint is one round trip plus its commit. The lease
    check reads the execution row ``FOR SHARE``: a concurrent claim (an UPDATE) either waits for
    this checkpoint to commit, or has committed first and the token no longer matches. Parallel
    checkpoints of one execution take share locks that do not block each other.
    SQLite: the same three steps as separate statements inside the ``BEGIN IMMEDIATE``
    transaction, which already excludes every other writer.
    """
    values = _step_values(outcome, now)
    if is_postgresql(conn):
        row = await _record_in_one_statement(conn, lease, values, attempt)
    else:
        row = await _record_in_steps(conn, lease, values, attempt)
    if row is None:
        # Rare path, so the extra read is fine: tell a lost lease from a completed outcome
        # (which the upsert never overwrites).
        if not await _lease_held(conn, lease):
            raise LeaseLost(lease.execution_id)
        raise NonDeterministicReplay(
            f"step {outcome.name!r} already has a completed outcome in run {outcome.run_id};"
            " a completed outcome is never overwritten"
        )
    return _record(row)


async def _lease_held(conn: AsyncConnection, lease: Lease) -> bool:
    held = await conn.scalar(
        select(executions.c.execution_id).where(
            executions.c.execution_id == lease.execution_id,
            executions.c.lease_token == lease.token,
        )
    )
    return held is not None


def _step_upsert(conn: AsyncConnection) -> tuple[Any, dict[str, Any]]:
    """The step INSERT; on conflict a retry's outcome replaces the earlier attempt's, but a
    completed outcome is never replaced."""
    statement = upsert(conn, steps)
    return statement, {
        "index_elements": ["run_id", "name"],
        "set_": {column: getattr(statement.excluded, column) for column in _UPDATED_ON_CONFLICT},
        "where": steps.c.status != StepStatus.COMPLETED.value,
    }


async def _record_in_one_statement(
    conn: AsyncConnection,
    lease: Lease,
    values: dict[str, Any],
    attempt: AttemptOutcome | None,
) -> Row[Any] | None:
    held = (
        select(executions.c.execution_id)
        .where(
            executions.c.execution_id == lease.execution_id,
            executions.c.lease_token == lease.token,
        )
        .with_for_update(read=True)
        .cte("held")
    )
    columns = list(values)
    # Selecting the constants FROM the lease CTE yields no row when the token does not match.
    source = select(
        *(literal(values[c], steps.c[c].type).label(c) for c in columns),
        held.c.execution_id,
    )
    statement, on_conflict = _step_upsert(conn)
    step_insert = (
        statement.from_select([*columns, "execution_id"], source)
        .on_conflict_do_update(**on_conflict)
        .returning(*steps.c)
    )
    written = step_insert.cte("written")
    query = select(*written.c).add_cte(held)
    if attempt is not None:
        attempt_insert = (
            attempts.insert()
            .from_select(
                [
                    "step_id",
                    "attempt_number",
                    "status",
                    "result",
                    "error",
                    "started_at",
                    "completed_at",
                ],
                select(
                    written.c.step_id,
                    literal(attempt.attempt_number),
                    literal(attempt.status.value),
                    literal(attempt.result, JSONValue),
                    literal(attempt.error, JSONValue),
                    literal(attempt.started_at, UTCDateTime()),
                    literal(attempt.completed_at, UTCDateTime()),
                ),
            )
            .returning(attempts.c.attempt_id)
            .cte("attempt")
        )
        query = query.add_cte(attempt_insert)
    return (await conn.execute(query)).first()


async def _record_in_steps(
    conn: AsyncConnection,
    lease: Lease,
    values: dict[str, Any],
    attempt: AttemptOutcome | None,
) -> Row[Any] | None:
    if not await _lease_held(conn, lease):
        return None
    statement, on_conflict = _step_upsert(conn)
    row = (
        await conn.execute(
            statement.values(execution_id=lease.execution_id, **values)
            .on_conflict_do_update(**on_conflict)
            .returning(*steps.c)
        )
    ).first()
    if row is not None and attempt is not None:
        await conn.execute(
            attempts.insert().values(
                step_id=row.step_id,
                attempt_number=attempt.attempt_number,
                status=attempt.status.value,
                result=attempt.result,
                error=attempt.error,
                started_at=attempt.started_at,
                completed_at=attempt.completed_at,
            )
        )
    return row


async def load_run_outcomes(conn: AsyncConnection, run_id: str) -> dict[str, StepRecord]:
    """Every stored step outcome of a run, by step name: the whole replay state in one query
    (an index range scan on the unique ``(run_id, name)`` index)."""
    rows = await conn.execute(select(steps).where(steps.c.run_id == run_id))
    return {row.name: _record(row) for row in rows}


async def load_outcomes_of_runs(
    conn: AsyncConnection, run_ids: Sequence[str]
) -> dict[str, dict[str, StepRecord]]:
    """:func:`load_run_outcomes` for several runs at once (a claim's batch): one query."""
    found: dict[str, dict[str, StepRecord]] = {run_id: {} for run_id in run_ids}
    if not run_ids:
        return found
    rows = await conn.execute(select(steps).where(steps.c.run_id.in_(list(run_ids))))
    for row in rows:
        found[row.run_id][row.name] = _record(row)
    return found


async def list_steps(conn: AsyncConnection, run_id: str) -> list[StepRecord]:
    """A run's steps in the order they were first recorded (the timeline)."""
    rows = await conn.execute(
        select(steps).where(steps.c.run_id == run_id).order_by(steps.c.position, steps.c.step_id)
    )
    return [_record(r) for r in rows]


async def list_step_attempts(
    conn: AsyncConnection, step_ids: Sequence[int]
) -> dict[int, list[StepAttemptRecord]]:
    """The attempts of the given steps, by step id, oldest first."""
    if not step_ids:
        return {}
    rows = await conn.execute(
        select(attempts)
        .where(attempts.c.step_id.in_(list(step_ids)))
        .order_by(attempts.c.step_id, attempts.c.attempt_number)
    )
    found: dict[int, list[StepAttemptRecord]] = {step_id: [] for step_id in step_ids}
    for row in rows:
        found[row.step_id].append(_attempt_record(row))
    return found
