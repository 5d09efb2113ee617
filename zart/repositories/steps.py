"""Step outcomes and their attempts: the checkpoint write and the one-query replay read."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ColumnElement, String, and_, any_, bindparam, func, select
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from zart.errors import LeaseLost, NonDeterministicReplay
from zart.models import (
    AttemptStatus,
    ExecutionRow,
    StepAttemptRow,
    StepKind,
    StepRow,
    StepStatus,
    table_of,
)
from zart.repositories import raw
from zart.repositories.dialect import is_postgresql
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
    return record_of(row._mapping)


def record_of(m: Mapping[Any, Any]) -> StepRecord:
    """A step record from a row's mapping (an SQLAlchemy row's, or an asyncpg record)."""
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

    The step row is inserted from a SELECT that yields a row only while the lease token still
    matches, so a fenced-out worker inserts nothing. PostgreSQL: one statement (the attempt
    insert rides along as a data-modifying CTE), so a checkpoint is one round trip plus its
    commit; the lease is read ``FOR SHARE``, so a concurrent claim (an UPDATE) either waits for
    this checkpoint to commit, or committed first and the token no longer matches; parallel
    checkpoints of one execution take share locks that do not block each other. SQLite: the
    attempt is a second statement inside the ``BEGIN IMMEDIATE`` transaction, which already
    excludes every other writer. The statements are built once and cached: only their
    parameters change from step to step.
    """
    params = {
        **_step_values(outcome, now),
        "lease_execution_id": lease.execution_id,
        "lease_token": lease.token,
        **_attempt_values(attempt),
    }
    postgresql = is_postgresql(conn)
    row = (
        await conn.execute(_checkpoint_statement(postgresql, attempt is not None), params)
    ).first()
    if row is None:
        # Rare path, so the extra read is fine: tell a lost lease from a completed outcome
        # (which the upsert never overwrites).
        if not await _lease_held(conn, lease):
            raise LeaseLost(lease.execution_id)
        raise NonDeterministicReplay(
            f"step {outcome.name!r} already has a completed outcome in run {outcome.run_id};"
            " a completed outcome is never overwritten"
        )
    if attempt is not None and not postgresql:
        await conn.execute(_attempt_statement(), {**params, "step_id": row.step_id})
    return _record(row)


async def record_step_outcome_driver(
    session: Any,
    lease: Lease,
    outcome: StepOutcome,
    *,
    attempt: AttemptOutcome | None = None,
    now: datetime,
) -> StepRecord:
    """:func:`record_step_outcome` on a PostgreSQL driver connection in autocommit (a
    :class:`zart.database.DriverSession`): the same fenced statement, one round trip, committed
    when it returns. Raises :class:`LeaseLost` (nothing written) like the other."""
    params = {
        **_step_values(outcome, now),
        "lease_execution_id": lease.execution_id,
        "lease_token": lease.token,
        **_attempt_values(attempt),
    }
    with_attempt = attempt is not None
    statement = raw.compiled(
        ("checkpoint", with_attempt),
        lambda: _checkpoint_statement(True, with_attempt),
        session.dialect,
        session.schema_map,
    )
    rows = await statement.fetch(session.connection, params)
    if not rows:
        held = raw.compiled(
            "lease_held", _lease_held_statement, session.dialect, session.schema_map
        )
        if not await held.fetch(session.connection, params):
            raise LeaseLost(lease.execution_id)
        raise NonDeterministicReplay(
            f"step {outcome.name!r} already has a completed outcome in run {outcome.run_id};"
            " a completed outcome is never overwritten"
        )
    return record_of(rows[0])


def record_step_outcome_sqlite(
    session: Any,
    lease: Lease,
    outcome: StepOutcome,
    *,
    attempt: AttemptOutcome | None = None,
    now: datetime,
) -> StepRecord:
    """:func:`record_step_outcome` on SQLite's writer connection (a
    :class:`zart.database.DriverSession` of :class:`zart.database.SQLiteWriter`, inside its
    ``BEGIN IMMEDIATE`` transaction; synchronous, in the writer's thread). The same fenced
    statements; raises :class:`LeaseLost` (nothing written) like the other."""
    params = {
        **_step_values(outcome, now),
        "lease_execution_id": lease.execution_id,
        "lease_token": lease.token,
        **_attempt_values(attempt),
    }
    statement = raw.compiled(
        ("checkpoint", False),
        lambda: _checkpoint_statement(False, False),
        session.dialect,
        None,
    )
    rows = statement.run(session.connection, params)
    if not rows:
        held = raw.compiled("lease_held", _lease_held_statement, session.dialect, None)
        if not held.run(session.connection, params):
            raise LeaseLost(lease.execution_id)
        raise NonDeterministicReplay(
            f"step {outcome.name!r} already has a completed outcome in run {outcome.run_id};"
            " a completed outcome is never overwritten"
        )
    record = record_of(rows[0])
    if attempt is not None:
        insert = raw.compiled("attempt", _attempt_statement, session.dialect, None)
        insert.run(session.connection, {**params, "step_id": record.step_id})
    return record


async def record_step_outcomes_driver(
    session: Any,
    items: Sequence[tuple[Lease, StepOutcome, AttemptOutcome | None]],
    *,
    now: datetime,
) -> list[StepRecord | LeaseLost | NonDeterministicReplay]:
    """Several checkpoints, of different executions, in **one** statement on a PostgreSQL
    driver connection in autocommit (group commit): each item fenced by its own lease exactly
    as :func:`record_step_outcome_driver` fences one, the refused ones writing nothing. Per
    item, in order: its stored record, or the error it gets (``LeaseLost``,
    ``NonDeterministicReplay``).

    The execution rows are locked ``FOR SHARE`` in ``execution_id`` order, as the heartbeat
    locks them (:func:`zart.repositories.executions.renew_leases`), so two statements that
    lock several rows never wait for each other in a cycle."""
    columns: dict[str, list[Any]] = {name: [] for name in _GROUP_COLUMNS}
    for lease, outcome, attempt in items:
        values = {
            **_step_values(outcome, now),
            "lease_execution_id": lease.execution_id,
            "lease_token": lease.token,
            "has_attempt": attempt is not None,
            **(_attempt_values(attempt) or _NO_ATTEMPT),
        }
        for name in _GROUP_COLUMNS:
            columns[name].append(values[name])
    statement = raw.compiled(
        "group_checkpoint", _group_checkpoint_statement, session.dialect, session.schema_map
    )
    rows = await statement.fetch(session.connection, {f"g_{k}": v for k, v in columns.items()})
    stored = {(row["run_id"], row["name"]): row for row in rows}
    results: list[StepRecord | LeaseLost | NonDeterministicReplay] = []
    for lease, outcome, _attempt in items:
        row = stored.get((outcome.run_id, outcome.name))
        if row is not None:
            results.append(_written(row, lease, outcome, now))
            continue
        held = raw.compiled(
            "lease_held", _lease_held_statement, session.dialect, session.schema_map
        )
        params = {"lease_execution_id": lease.execution_id, "lease_token": lease.token}
        if not await held.fetch(session.connection, params):
            results.append(LeaseLost(lease.execution_id))
        else:
            results.append(
                NonDeterministicReplay(
                    f"step {outcome.name!r} already has a completed outcome in run"
                    f" {outcome.run_id}; a completed outcome is never overwritten"
                )
            )
    return results


def _written(
    row: Mapping[str, Any], lease: Lease, outcome: StepOutcome, now: datetime
) -> StepRecord:
    """The record a group checkpoint stored: what the item wrote, plus what the row kept or
    was given (its id; on a retry's overwrite, its first ``position`` and ``created_at``).
    The statement returns only those, so the JSON just written is not sent back and decoded."""
    return StepRecord(
        step_id=row["step_id"],
        run_id=outcome.run_id,
        execution_id=lease.execution_id,
        name=outcome.name,
        kind=outcome.kind,
        status=outcome.status,
        result=outcome.result,
        error=outcome.error,
        attempts=outcome.attempts,
        position=row["position"],
        deadline_at=outcome.deadline_at,
        wake_at=outcome.wake_at,
        created_at=row["created_at"],
        updated_at=now,
        completed_at=outcome.completed_at,
    )


@functools.cache
def _group_checkpoint_statement() -> Any:
    def column_type(name: str) -> Any:
        if name in ("lease_execution_id", "lease_token"):
            return String()
        if name == "has_attempt":
            return Boolean()
        if name.startswith("a_"):
            return attempts.c[name[2:]].type
        return steps.c[name].type

    arrays = [bindparam(f"g_{n}", type_=ARRAY(column_type(n))) for n in _GROUP_COLUMNS]
    unnested = func.unnest(*arrays).table_valued(*_GROUP_COLUMNS).render_derived(name="items")
    items = select(*unnested.c).cte("items")
    held = (
        select(executions.c.execution_id)
        .join(
            items,
            and_(
                executions.c.execution_id == items.c.lease_execution_id,
                executions.c.lease_token == items.c.lease_token,
            ),
        )
        .order_by(executions.c.execution_id)
        .with_for_update(read=True, of=executions)
        .cte("held")
    )
    insert = postgresql_dialect.insert(steps)
    written = (
        insert.from_select(
            [*_STEP_COLUMNS, "execution_id"],
            select(*(items.c[c] for c in _STEP_COLUMNS), items.c.lease_execution_id).where(
                items.c.lease_execution_id.in_(select(held.c.execution_id))
            ),
        )
        .on_conflict_do_update(
            index_elements=["run_id", "name"],
            set_={column: getattr(insert.excluded, column) for column in _UPDATED_ON_CONFLICT},
            where=steps.c.status != StepStatus.COMPLETED.value,
        )
        .returning(*steps.c)
        .cte("written")
    )
    attempt = (
        attempts.insert()
        .from_select(
            ["step_id", *_ATTEMPT_COLUMNS],
            select(written.c.step_id, *(items.c[f"a_{c}"] for c in _ATTEMPT_COLUMNS))
            .select_from(
                written.join(
                    items,
                    and_(items.c.run_id == written.c.run_id, items.c.name == written.c.name),
                )
            )
            .where(items.c.has_attempt),
        )
        .returning(attempts.c.attempt_id)
        .cte("attempt")
    )
    kept = ("step_id", "run_id", "name", "position", "created_at")
    return select(*(written.c[name] for name in kept)).add_cte(attempt)


def _lease_held_statement() -> Any:
    return select(executions.c.execution_id).where(
        executions.c.execution_id == bindparam("lease_execution_id"),
        executions.c.lease_token == bindparam("lease_token"),
    )


async def _lease_held(conn: AsyncConnection, lease: Lease) -> bool:
    held = await conn.scalar(
        select(executions.c.execution_id).where(
            executions.c.execution_id == lease.execution_id,
            executions.c.lease_token == lease.token,
        )
    )
    return held is not None


_STEP_COLUMNS = (
    "run_id",
    "name",
    "kind",
    "status",
    "result",
    "error",
    "attempts",
    "position",
    "deadline_at",
    "wake_at",
    "created_at",
    "updated_at",
    "completed_at",
)
_ATTEMPT_COLUMNS = (
    "attempt_number",
    "status",
    "result",
    "error",
    "started_at",
    "completed_at",
)


_NO_ATTEMPT = {
    "a_attempt_number": 0,
    "a_status": "",
    "a_result": None,
    "a_error": None,
    "a_started_at": None,
    "a_completed_at": None,
}
_GROUP_COLUMNS = (
    "lease_execution_id",
    "lease_token",
    *_STEP_COLUMNS,
    "has_attempt",
    *(f"a_{c}" for c in _ATTEMPT_COLUMNS),
)


def _attempt_values(attempt: AttemptOutcome | None) -> dict[str, Any]:
    if attempt is None:
        return {}
    return {
        "a_attempt_number": attempt.attempt_number,
        "a_status": attempt.status.value,
        "a_result": attempt.result,
        "a_error": attempt.error,
        "a_started_at": attempt.started_at,
        "a_completed_at": attempt.completed_at,
    }


def _attempt_params() -> list[Any]:
    return [bindparam(f"a_{c}", type_=attempts.c[c].type) for c in _ATTEMPT_COLUMNS]


@functools.cache
def _checkpoint_statement(postgresql: bool, with_attempt: bool) -> Any:
    """The fenced step upsert (with the attempt insert on PostgreSQL), built once."""
    held = select(executions.c.execution_id).where(
        executions.c.execution_id == bindparam("lease_execution_id"),
        executions.c.lease_token == bindparam("lease_token"),
    )
    insert: Any = (postgresql_dialect.insert if postgresql else sqlite_dialect.insert)(steps)
    on_conflict: dict[str, Any] = {
        "index_elements": ["run_id", "name"],
        # A retry's outcome replaces the earlier attempt's; a completed outcome never changes.
        "set_": {column: getattr(insert.excluded, column) for column in _UPDATED_ON_CONFLICT},
        "where": steps.c.status != StepStatus.COMPLETED.value,
    }
    values = [bindparam(c, type_=steps.c[c].type).label(c) for c in _STEP_COLUMNS]
    if not postgresql:
        source = select(*values, executions.c.execution_id).where(held.whereclause)  # type: ignore[arg-type]
        return (
            insert.from_select([*_STEP_COLUMNS, "execution_id"], source)
            .on_conflict_do_update(**on_conflict)
            .returning(*steps.c)
        )
    lease = held.with_for_update(read=True).cte("held")
    written = (
        insert.from_select([*_STEP_COLUMNS, "execution_id"], select(*values, lease.c.execution_id))
        .on_conflict_do_update(**on_conflict)
        .returning(*steps.c)
        .cte("written")
    )
    query = select(*written.c).add_cte(lease)
    if with_attempt:
        attempt = (
            attempts.insert()
            .from_select(
                ["step_id", *_ATTEMPT_COLUMNS], select(written.c.step_id, *_attempt_params())
            )
            .returning(attempts.c.attempt_id)
            .cte("attempt")
        )
        query = query.add_cte(attempt)
    return query


@functools.cache
def _attempt_statement() -> Any:
    return attempts.insert().values(
        step_id=bindparam("step_id"),
        **{c: p for c, p in zip(_ATTEMPT_COLUMNS, _attempt_params(), strict=True)},
    )


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


async def load_outcomes_of_runs_driver(
    session: Any, run_ids: Sequence[str]
) -> dict[str, dict[str, StepRecord]]:
    """:func:`load_outcomes_of_runs` on a PostgreSQL driver connection (one query)."""
    found: dict[str, dict[str, StepRecord]] = {run_id: {} for run_id in run_ids}
    if not run_ids:
        return found
    statement = raw.compiled(
        "outcomes_of_runs",
        lambda: select(steps).where(
            steps.c.run_id == any_(bindparam("run_ids", type_=ARRAY(String)))
        ),
        session.dialect,
        session.schema_map,
    )
    for row in await statement.fetch(session.connection, {"run_ids": list(run_ids)}):
        found[row["run_id"]][row["name"]] = record_of(row)
    return found


def load_outcomes_of_runs_sqlite(
    session: Any, run_ids: Sequence[str]
) -> dict[str, dict[str, StepRecord]]:
    """:func:`load_outcomes_of_runs` on SQLite's writer connection (one query)."""
    found: dict[str, dict[str, StepRecord]] = {run_id: {} for run_id in run_ids}
    if not run_ids:
        return found
    statement = raw.compiled(
        "outcomes_of_runs",
        lambda: select(steps).where(raw.in_json_list(steps.c.run_id, "run_ids")),
        session.dialect,
        None,
    )
    for row in statement.run(session.connection, {"run_ids": raw.json_list(run_ids)}):
        found[row["run_id"]][row["name"]] = record_of(row)
    return found


def complete_due_sleeps_sqlite(session: Any, run_ids: Sequence[str], *, now: datetime) -> int:
    """:func:`complete_due_sleeps` on SQLite's writer connection (in its transaction)."""
    if not run_ids:
        return 0
    statement = raw.compiled(
        "complete_due_sleeps",
        lambda: _complete_sleeps_statement(True),
        session.dialect,
        None,
    )
    return len(statement.run(session.connection, {"run_ids": raw.json_list(run_ids), "now": now}))


async def complete_due_sleeps(
    conn: AsyncConnection, run_ids: Sequence[str], *, now: datetime
) -> int:
    """Complete the sleeps of ``run_ids`` that are due at ``now``, in the caller's transaction
    (the claim's, which holds their leases): what each resumed handler would otherwise store
    with a checkpoint of its own the moment it passes the sleep. How many were completed."""
    if not run_ids:
        return 0
    rows = await conn.execute(
        _complete_sleeps_statement(False), {"run_ids": list(run_ids), "now": now}
    )
    return len(rows.all())


@functools.cache
def _complete_sleeps_statement(json_list: bool) -> Any:
    """``json_list``: the run ids as a JSON list (SQLite's writer connection); otherwise an
    expanding IN."""
    if json_list:
        runs = raw.in_json_list(steps.c.run_id, "run_ids")
    else:
        runs = steps.c.run_id.in_(bindparam("run_ids", expanding=True))
    return due_sleeps_completed(runs).returning(steps.c.step_id)


def due_sleeps_completed(
    runs: ColumnElement[bool], due: Any = None, completed_at: Any = None
) -> Any:
    """The UPDATE that completes the sleeps of the runs ``runs`` selects that are due by
    ``due`` (default: ``:now``), stamped ``completed_at`` (default: ``:now``): a sleep needs
    no handler code to end. Shared by :func:`complete_due_sleeps`, the worker's waking claim
    and its claim ahead on PostgreSQL."""
    now = bindparam("now", type_=steps.c.completed_at.type)
    return (
        steps.update()
        .where(
            runs,
            steps.c.kind == StepKind.SLEEP.value,
            steps.c.status == StepStatus.WAITING.value,
            steps.c.wake_at <= (now if due is None else due),
        )
        .values(
            status=StepStatus.COMPLETED.value,
            # JSON null, as the handler's own checkpoint of a sleep stores it
            result=bindparam("sleep_result", None, type_=steps.c.result.type),
            attempts=1,
            updated_at=now,
            completed_at=now if completed_at is None else completed_at,
        )
    )


async def list_steps(conn: AsyncConnection, run_id: str) -> list[StepRecord]:
    """A run's steps in the order they were first recorded (the timeline)."""
    rows = await conn.execute(
        select(steps).where(steps.c.run_id == run_id).order_by(steps.c.position, steps.c.step_id)
    )
    return [_record(r) for r in rows]


async def list_waiting_steps(conn: AsyncConnection, run_ids: Sequence[str]) -> list[StepRecord]:
    """The steps still waiting (a sleep, an event, a retry back-off) in the given runs, in
    timeline order: what waiting executions wait for."""
    if not run_ids:
        return []
    rows = await conn.execute(
        select(steps)
        .where(steps.c.run_id.in_(list(run_ids)), steps.c.status == StepStatus.WAITING.value)
        .order_by(steps.c.run_id, steps.c.position, steps.c.step_id)
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
