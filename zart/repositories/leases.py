"""Leases: the fenced transitions of a claimed execution — renew (heartbeat), release
(shutdown), suspend (a durable wait) and finish (alone or grouped).

Every statement that changes a claimed execution is *fenced*: it matches on the lease token as
well as the id, so a worker whose lease expired and was taken over changes nothing and learns
it through :class:`~zart.errors.LeaseLost`. Statements that lock several execution rows (the
heartbeat, the group checkpoint, the group finish, the release of held executions) lock them
in ``execution_id`` order: no two of them wait for each other in a cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import String, bindparam, case, func, select, update

from zart.errors import LeaseLost
from zart.models import EventRow, ExecutionRow, ExecutionStatus, RunRow, TimerRow, table_of
from zart.repositories import rows, runs, wakeups, workers
from zart.repositories.claims import locked_still_leased, unnested
from zart.repositories.executions import leaving_worker
from zart.repositories.executors import Backend, Operation, autocommit
from zart.repositories.records import ExecutionRecord, Lease
from zart.repositories.statements import Statement, one_of

executions = table_of(ExecutionRow)
run_rows = table_of(RunRow)
timers = table_of(TimerRow)
events = table_of(EventRow)

#: Leases renewed per heartbeat statement.
RENEW_CHUNK = 1000

Ended = Literal[ExecutionStatus.COMPLETED, ExecutionStatus.FAILED]
#: One finish of a group: ``(lease, claimed_execution, completed_or_failed, result, error)``.
Finish = tuple[Lease, ExecutionRecord, ExecutionStatus, Any, Any]


def _fenced() -> list[Any]:
    return [
        executions.c.execution_id == bindparam("fence_execution_id"),
        executions.c.lease_token == bindparam("fence_token"),
        executions.c.status == ExecutionStatus.RUNNING.value,
    ]


def _renew(dialect: str) -> Any:
    expires_at = bindparam("expires_at", type_=executions.c.claimable_at.type)
    # The rows are locked in execution_id order, as a group of checkpoints locks them: two
    # multi-row lockers never deadlock.
    locked = (
        select(executions.c.execution_id)
        .where(
            one_of(executions.c.execution_id, "ids", dialect),
            one_of(executions.c.lease_token, "tokens", dialect),
            executions.c.status == ExecutionStatus.RUNNING.value,
        )
        .order_by(executions.c.execution_id)
        .with_for_update()
    )
    return (
        update(executions)
        .where(executions.c.execution_id.in_(locked.scalar_subquery()))
        # Never sooner than it was: one claimed ahead stays unclaimable until it is due.
        .values(
            claimable_at=case(
                (executions.c.claimable_at > expires_at, executions.c.claimable_at),
                else_=expires_at,
            )
        )
        .returning(executions.c.execution_id, executions.c.lease_token)
    )


def _suspend(_dialect: str) -> Any:
    next_timer = (
        select(func.min(timers.c.fire_at))
        .where(timers.c.run_id == bindparam("run_id"), timers.c.fired_at.is_(None))
        .scalar_subquery()
    )
    deadline = executions.c.deadline_at
    # The earlier of the next timer and the execution's deadline, NULL-aware and portable
    # (PostgreSQL's LEAST skips NULLs, SQLite's two-argument min returns NULL).
    wake_at = case(
        (next_timer.is_(None), deadline),
        (deadline.is_(None), next_timer),
        (next_timer < deadline, next_timer),
        else_=deadline,
    )
    return (
        update(executions)
        .where(*_fenced())
        .values(leaving_worker(ExecutionStatus.WAITING.value, claimable_at=wake_at))
        .returning(*executions.c)
    )


def _suspend_woken(dialect: str) -> Any:
    pending = (
        select(events.c.event_id)
        .where(
            events.c.execution_id == bindparam("fence_execution_id"),
            one_of(events.c.name, "events", dialect),
            events.c.consumed_at.is_(None),
        )
        .exists()
    )
    return (
        update(executions)
        .where(executions.c.execution_id == bindparam("fence_execution_id"), pending)
        .values(claimable_at=bindparam("now", type_=executions.c.claimable_at.type))
        .returning(*executions.c)
    )


def _finished_columns(finished: Any) -> tuple[Any, ...]:
    """What a finish statement returns of the ``finished`` rows (see :func:`_finished`)."""
    c = finished.c
    return (c.execution_id, c.version, c.updated_at, c.completed_at)


def _finish(dialect: str) -> Any:
    """The fenced finish; PostgreSQL: the run's end too, as a CTE (one statement)."""
    status = bindparam("status", type_=executions.c.status.type)
    result = bindparam("result", type_=executions.c.result.type)
    error = bindparam("error", type_=executions.c.error.type)
    now = bindparam("now", type_=executions.c.updated_at.type)
    update_ = (
        update(executions)
        .where(*_fenced())
        .values(
            leaving_worker(status, result=result, error=error, claimable_at=None, completed_at=now)
        )
    )
    if dialect != "postgresql":
        return update_.returning(*_finished_columns(executions))
    # Only what the run's update and the caller read: the row's JSON is not sent back.
    finished = update_.returning(*_finished_columns(executions), executions.c.current_run_id).cte(
        "finished"
    )
    run = (
        update(run_rows)
        .where(run_rows.c.run_id == finished.c.current_run_id)
        .values(status=status, result=result, error=error, completed_at=now)
        .returning(run_rows.c.run_id)
        .cte("run")
    )
    return select(*_finished_columns(finished)).add_cte(run)


def _finish_many(_dialect: str) -> Any:
    now = bindparam("now", type_=executions.c.updated_at.type)
    items = select(
        *unnested(
            ("g_execution_id", String()),
            ("g_token", String()),
            ("g_status", String()),
            ("g_result", executions.c.result.type),
            ("g_error", executions.c.error.type),
        ).c
    ).cte("items")
    # The new values ride along with the locked ids, so the update below joins one CTE to the
    # table by primary key. Joining ``items`` there as well let the planner, which guesses 10
    # rows for an unnest, filter ``items`` once per updated row: quadratic in the batch.
    locked = locked_still_leased(
        items, executions.c.execution_id, items.c.status, items.c.result, items.c.error
    )
    finished = (
        update(executions)
        .where(executions.c.execution_id == locked.c.execution_id)
        .values(
            leaving_worker(
                locked.c.status,
                result=locked.c.result,
                error=locked.c.error,
                claimable_at=None,
                completed_at=now,
            )
        )
        .returning(
            *_finished_columns(executions),
            executions.c.current_run_id,
            executions.c.status,
            executions.c.result,
            executions.c.error,
        )
        .cte("finished")
    )
    run = (
        update(run_rows)
        .where(run_rows.c.run_id == finished.c.current_run_id)
        .values(
            status=finished.c.status,
            result=finished.c.result,
            error=finished.c.error,
            completed_at=now,
        )
        .returning(run_rows.c.run_id)
        .cte("run")
    )
    return select(*_finished_columns(finished)).add_cte(run)


RENEW = Statement("renew_leases", _renew)
RELEASE = Statement(
    "release_lease",
    lambda _d: (
        update(executions)
        .where(*_fenced())
        .values(
            leaving_worker(
                ExecutionStatus.SCHEDULED.value,
                claimable_at=bindparam("claimable_at", type_=executions.c.claimable_at.type),
            )
        )
        .returning(executions.c.execution_id)
    ),
)
SUSPEND = Statement("suspend", _suspend)
SUSPEND_WOKEN = Statement("suspend_woken", _suspend_woken)
FINISH = Statement("finish", _finish)
FINISH_MANY = Statement("finish_many", _finish_many)


def renew_leases(
    backend: Backend, leases: Sequence[Lease], *, now: datetime, lease_timeout: timedelta
) -> Operation[tuple[list[Lease], list[Lease]]]:
    """Heartbeat: push the expiry of still-held leases forward.

    Returns ``(renewed, lost)``. A lease is lost when its token no longer matches: the execution
    was taken over, cancelled or finished. Fenced like every other write; in chunks of
    :data:`RENEW_CHUNK` leases, each chunk's few tokens (one per claim batch) matched exactly.
    """
    if not leases:
        return [], []
    expires_at = now + lease_timeout
    held: set[tuple[str, str]] = set()
    for start in range(0, len(leases), RENEW_CHUNK):
        chunk = leases[start : start + RENEW_CHUNK]
        found = yield (
            RENEW,
            {
                "ids": [lease.execution_id for lease in chunk],
                "tokens": sorted({lease.token for lease in chunk}),
                "expires_at": expires_at,
            },
        )
        held.update((r["execution_id"], r["lease_token"]) for r in found)
    renewed = [
        Lease(lease.execution_id, lease.token, lease.owner, expires_at)
        for lease in leases
        if (lease.execution_id, lease.token) in held
    ]
    lost = [lease for lease in leases if (lease.execution_id, lease.token) not in held]
    return renewed, lost


def _fence(lease: Lease, now: datetime) -> dict[str, Any]:
    return {"fence_execution_id": lease.execution_id, "fence_token": lease.token, "now": now}


def release_lease(
    backend: Backend,
    lease: Lease,
    *,
    now: datetime,
    claimable_at: datetime | None = None,
    channel: str | None = None,
    task_names: Sequence[str] = (),
) -> Operation[None]:
    """Give an execution back unfinished (graceful shutdown): claimable again at once, or at
    ``claimable_at``, and, with ``channel``, the workers of ``task_names`` woken at commit
    (another worker resumes it at once). Raises :class:`LeaseLost` if the lease was gone."""
    found = yield RELEASE, {**_fence(lease, now), "claimable_at": claimable_at or now}
    if not found:
        raise LeaseLost(lease.execution_id)
    if channel is not None:
        yield from wakeups.notify(backend, channel, *task_names)


def suspend_execution(
    backend: Backend,
    lease: Lease,
    *,
    run_id: str,
    now: datetime,
    awaited_events: Sequence[str] = (),
    channel: str | None = None,
) -> Operation[ExecutionRecord]:
    """Park a running execution as ``waiting`` and release its lease; with ``channel``, idle
    workers are told to re-plan their next wake-up (when it has one).

    It becomes claimable at its earliest pending timer of ``run_id`` or at its deadline,
    whichever comes first (neither: only an event or an admin can wake it). Safe against a lost
    wake-up: the first statement locks the execution row; the second, a new statement that sees
    every delivery committed before that lock, makes it claimable at once when one of
    ``awaited_events`` is already waiting. A delivery that commits later locks the row after
    our commit and finds it ``waiting``.
    """
    params = {**_fence(lease, now), "run_id": run_id, "events": list(awaited_events)}
    found = yield SUSPEND, params
    if not found:
        raise LeaseLost(lease.execution_id)
    row = found[0]
    if awaited_events:
        again = yield SUSPEND_WOKEN, params
        if again:
            row = again[0]
    record = rows.execution(row)
    if channel is not None and record.claimable_at is not None:
        yield from wakeups.notify(backend, channel, record.task_name)
    return record


def _check_finish(lease: Lease, execution: ExecutionRecord, status: ExecutionStatus) -> None:
    if status not in (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED):
        raise ValueError(f"finish_execution records completed or failed, not {status!r}")
    if execution.execution_id != lease.execution_id:
        raise ValueError(
            f"the record of {execution.execution_id!r} given to finish {lease.execution_id!r}"
        )


@autocommit
def finish_execution(
    backend: Backend,
    lease: Lease,
    *,
    execution: ExecutionRecord,
    status: Ended,
    result: Any = None,
    error: Any = None,
    now: datetime,
) -> Operation[ExecutionRecord]:
    """Record the handler's result (or failure) on the execution and its current run, and
    release the lease. Fenced: raises :class:`LeaseLost`, having changed nothing, when the
    lease was taken over. PostgreSQL: **one** statement (the run's end a CTE), so one round
    trip and one commit in autocommit.

    ``execution`` is the record the claim behind ``lease`` returned: the finished record is
    made of it and the values written (see :func:`_finished`), not read back."""
    _check_finish(lease, execution, status)
    params = {**_fence(lease, now), "status": status.value, "result": result, "error": error}
    found = yield FINISH, params
    if not found:
        raise LeaseLost(lease.execution_id)
    if not backend.modifying_ctes:
        yield from runs.end_run(
            backend, execution.run_id, status, result=result, error=error, now=now
        )
    return _finished(execution, status, result, error, found[0])


@autocommit
def finish_one(backend: Backend, item: Finish, *, now: datetime) -> Operation[ExecutionRecord]:
    """:func:`finish_execution` of one group item (the group commit's lone write)."""
    lease, execution, status, result, error = item
    return (
        yield from finish_execution(
            backend,
            lease,
            execution=execution,
            status=status,  # type: ignore[arg-type]
            result=result,
            error=error,
            now=now,
        )
    )


@autocommit
def finish_executions(
    backend: Backend, items: Sequence[Finish], *, now: datetime
) -> Operation[list[ExecutionRecord | LeaseLost]]:
    """:func:`finish_execution` for several executions at once (group commit); per item, in
    order, the finished execution or ``LeaseLost`` (that one changed nothing). PostgreSQL:
    **one** statement, the rows locked in ``execution_id`` order; SQLite: one finish after the
    other in the one transaction."""
    for lease, execution, status, _result, _error in items:
        _check_finish(lease, execution, status)
    results: list[ExecutionRecord | LeaseLost] = []
    if not backend.group_statements:
        for item in items:
            try:
                results.append((yield from finish_one(backend, item, now=now)))
            except LeaseLost as lost:
                results.append(lost)
        return results
    found = yield (
        FINISH_MANY,
        {
            "g_execution_id": [lease.execution_id for lease, *_ in items],
            "g_token": [lease.token for lease, *_ in items],
            "g_status": [status.value for _, _, status, *_ in items],
            "g_result": [result for *_, result, _ in items],
            "g_error": [error for *_, error in items],
            "now": now,
        },
    )
    finished = {row["execution_id"]: row for row in found}
    for lease, execution, status, result, error in items:
        row = finished.get(lease.execution_id)
        results.append(
            LeaseLost(lease.execution_id)
            if row is None
            else _finished(execution, status, result, error, row)
        )
    return results


def _finished(
    execution: ExecutionRecord, status: ExecutionStatus, result: Any, error: Any, row: Any
) -> ExecutionRecord:
    """The record a finish statement made of ``execution``, without reading it back.

    The statement returns only what the database decides (:func:`_finished_columns`): the
    rest is the claimed record, which no other statement changes while the lease is held (a
    heartbeat moves ``claimable_at``, which the finish clears; whatever else writes the row
    clears the lease, and the finish then raises :class:`LeaseLost`), and the values written.
    Reading the JSON columns back cost a decode each (``payload``, ``result``, ``error``) per
    finished execution. ``result`` and ``error`` are the plain JSON the runtime wrote, equal
    (``==``) to what JSONB gives back, which orders object keys its own way and gives floats of
    magnitude 1e16 and more back as ints."""
    return ExecutionRecord(
        execution_id=execution.execution_id,
        task_name=execution.task_name,
        status=status,
        payload=execution.payload,
        result=result,
        error=error,
        run_id=execution.run_id,
        run_count=execution.run_count,
        created_at=execution.created_at,
        updated_at=row["updated_at"],
        completed_at=row["completed_at"],
        deadline_at=execution.deadline_at,
        claimable_at=None,
        lease_owner=None,
        claim_count=execution.claim_count,
        version=row["version"],
        fire_time=execution.fire_time,
        crashed_claims=execution.crashed_claims,
        parent_execution_id=execution.parent_execution_id,
    )


def heartbeat(
    backend: Backend,
    worker_id: str,
    leases: Sequence[Lease],
    *,
    now: datetime,
    lease_timeout: timedelta,
) -> Operation[tuple[list[Lease], list[Lease]]]:
    """A worker's heartbeat, in one transaction: its leases renewed (:func:`renew_leases`:
    ``(renewed, lost)``) and its ``last_seen_at`` recorded."""
    renewed = yield from renew_leases(backend, leases, now=now, lease_timeout=lease_timeout)
    yield from workers.record_worker_heartbeat(backend, worker_id, now=now)
    return renewed
