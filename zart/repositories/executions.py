"""Executions and their leases: create, read, list, cancel, and the concurrency-critical
statements of the worker — claim, renew, release, suspend and finish.

Every function takes the caller's connection and never commits: the caller owns the
transaction. Every statement that changes a claimed execution is *fenced*: it matches on the
lease token as well as the id, so a worker whose lease expired and was taken over changes
nothing and learns it through :class:`~zart.errors.LeaseLost`.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    any_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from zart.errors import ExecutionAlreadyExists, LeaseLost
from zart.models import (
    EventRow,
    ExecutionRow,
    ExecutionStatus,
    RunRow,
    RunTrigger,
    StepKind,
    StepRow,
    StepStatus,
    TimerRow,
    table_of,
)
from zart.repositories import raw
from zart.repositories import steps as steps_repo
from zart.repositories import timers as timers_repo
from zart.repositories.dialect import is_postgresql
from zart.repositories.records import (
    ClaimedExecution,
    CreatedExecution,
    ExecutionPage,
    ExecutionRecord,
    Lease,
)

executions = table_of(ExecutionRow)
steps = table_of(StepRow)
runs = table_of(RunRow)
timers = table_of(TimerRow)
events = table_of(EventRow)

_ACTIVE = (ExecutionStatus.SCHEDULED, ExecutionStatus.RUNNING, ExecutionStatus.WAITING)
_ACTIVE_VALUES = [s.value for s in _ACTIVE]

#: Leases renewed per heartbeat statement.
RENEW_CHUNK = 1000

SortField = Literal["created_at", "status", "task_name", "completed_at"]


def _leaving_worker(status: ExecutionStatus, now: datetime, **values: Any) -> dict[str, Any]:
    """The values of a transition that ends a worker's hold on an execution: the new status,
    no lease (which fences out whoever held it) and a new row version."""
    return {
        "status": status.value,
        "lease_token": None,
        "lease_owner": None,
        "updated_at": now,
        "version": executions.c.version + 1,
        **values,
    }


def _record(row: Row[Any]) -> ExecutionRecord:
    return _record_of(row._mapping)


def _record_of(m: Mapping[Any, Any]) -> ExecutionRecord:
    """An execution record from a row's mapping (an SQLAlchemy row's, or an asyncpg record)."""
    return ExecutionRecord(
        execution_id=m["execution_id"],
        task_name=m["task_name"],
        status=ExecutionStatus(m["status"]),
        payload=m["payload"],
        result=m["result"],
        error=m["error"],
        run_id=m["current_run_id"],
        run_count=m["run_count"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        completed_at=m["completed_at"],
        deadline_at=m["deadline_at"],
        claimable_at=m["claimable_at"],
        lease_owner=m["lease_owner"],
        claim_count=m["claim_count"],
        version=m["version"],
        # .get: statements that return only some columns still build a record.
        fire_time=m.get("fire_time"),
    )


# ---------------------------------------------------------------------------------------------
# Control plane


async def create_execution(
    conn: AsyncConnection,
    *,
    execution_id: str,
    task_name: str,
    payload: Any,
    now: datetime,
    claimable_at: datetime | None = None,
    deadline_at: datetime | None = None,
    lease: Lease | None = None,
) -> CreatedExecution:
    """Insert an execution and its first run, idempotently by ``execution_id``.

    An existing execution with the same task and payload is returned with ``created=False``;
    one with a different task or payload raises :class:`ExecutionAlreadyExists`. The insert uses
    ``ON CONFLICT DO NOTHING``, so a duplicate never aborts the caller's transaction.

    With ``lease`` the execution is inserted already claimed by that lease (``running``, its
    first claim), exactly as :func:`claim_ready_executions` would leave it: the start of an
    in-process worker's own execution, which then needs no claim (see
    ``DurableScheduler.start``).
    """
    params = _create_parameters(
        execution_id, task_name, payload, now, claimable_at, deadline_at, lease
    )
    if is_postgresql(conn):
        # One statement: the execution and, only if it was inserted, its first run.
        row = (await conn.execute(_create_statement_pg(), params)).first()
    else:
        row = (await conn.execute(_create_execution_sqlite(), params)).first()
        if row is not None:
            await conn.execute(_create_run_sqlite(), params)
    if row is None:
        return _existing(await get_execution(conn, execution_id), execution_id, task_name, payload)
    return CreatedExecution(_record(row), created=True)


async def create_execution_driver(
    session: Any,
    *,
    execution_id: str,
    task_name: str,
    payload: Any,
    now: datetime,
    deadline_at: datetime | None = None,
    lease: Lease | None = None,
) -> CreatedExecution:
    """:func:`create_execution` on a PostgreSQL driver connection (a
    :class:`zart.database.DriverSession`): the same single statement, compiled once; in
    autocommit it is one round trip, committed when it returns."""
    params = _create_parameters(execution_id, task_name, payload, now, None, deadline_at, lease)
    create = raw.compiled("create", _create_statement_pg, session.dialect, session.schema_map)
    rows = await create.fetch(session.connection, params)
    if rows:
        return CreatedExecution(_record_of(rows[0]), created=True)
    get = raw.compiled("get_execution", _get_statement, session.dialect, session.schema_map)
    found = await get.fetch(session.connection, params)
    existing = _record_of(found[0]) if found else None
    return _existing(existing, execution_id, task_name, payload)


def create_execution_sqlite(
    session: Any,
    *,
    execution_id: str,
    task_name: str,
    payload: Any,
    now: datetime,
    deadline_at: datetime | None = None,
    lease: Lease | None = None,
) -> CreatedExecution:
    """:func:`create_execution` on SQLite's writer connection, inside its transaction."""
    params = _create_parameters(execution_id, task_name, payload, now, None, deadline_at, lease)
    create = raw.compiled("create", _create_execution_sqlite, session.dialect, None)
    rows = create.run(session.connection, params)
    if rows:
        raw.compiled("create_run", _create_run_sqlite, session.dialect, None).run(
            session.connection, params
        )
        return CreatedExecution(_record_of(rows[0]), created=True)
    found = raw.compiled("get_execution", _get_statement, session.dialect, None).run(
        session.connection, params
    )
    existing = _record_of(found[0]) if found else None
    return _existing(existing, execution_id, task_name, payload)


def _create_parameters(
    execution_id: str,
    task_name: str,
    payload: Any,
    now: datetime,
    claimable_at: datetime | None,
    deadline_at: datetime | None,
    lease: Lease | None,
) -> dict[str, Any]:
    return {
        "execution_id": execution_id,
        "task_name": task_name,
        "payload": payload,
        "run_id": str(uuid.uuid4()),
        "deadline_at": deadline_at,
        "now": now,
        **_first_claim(lease, claimable_at or now),
    }


def _execution_values() -> dict[str, Any]:
    """The new execution's columns, as parameters of :func:`_create_parameters`."""
    now = bindparam("now", type_=executions.c.created_at.type)
    return {
        "execution_id": bindparam("execution_id"),
        "task_name": bindparam("task_name"),
        "payload": bindparam("payload", type_=executions.c.payload.type),
        "status": bindparam("status", type_=executions.c.status.type),
        "current_run_id": bindparam("run_id"),
        "run_count": 1,
        "claimable_at": bindparam("claimable_at", type_=executions.c.claimable_at.type),
        "claim_count": bindparam("claim_count"),
        "lease_token": bindparam("lease_token", type_=executions.c.lease_token.type),
        "lease_owner": bindparam("lease_owner", type_=executions.c.lease_owner.type),
        "deadline_at": bindparam("deadline_at", type_=executions.c.deadline_at.type),
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }


@functools.cache
def _create_execution_sqlite() -> Any:
    return (
        sqlite_insert(executions)
        .values(_execution_values())
        .on_conflict_do_nothing(index_elements=["execution_id"])
        .returning(*executions.c)
    )


@functools.cache
def _create_run_sqlite() -> Any:
    return runs.insert().values(
        run_id=bindparam("run_id"),
        execution_id=bindparam("execution_id"),
        run_index=1,
        payload=bindparam("payload", type_=runs.c.payload.type),
        status=ExecutionStatus.SCHEDULED.value,
        trigger=RunTrigger.INITIAL.value,
        started_at=bindparam("now", type_=runs.c.started_at.type),
    )


@functools.cache
def _create_statement_pg() -> Any:
    inserted = (
        postgresql_insert(executions)
        .values(_execution_values())
        .on_conflict_do_nothing(index_elements=["execution_id"])
        .returning(*executions.c)
        .cte("inserted")
    )
    first_run = (
        runs.insert()
        .from_select(
            ["run_id", "execution_id", "run_index", "payload", "status", "trigger", "started_at"],
            select(
                inserted.c.current_run_id,
                inserted.c.execution_id,
                literal(1),
                inserted.c.payload,
                literal(ExecutionStatus.SCHEDULED.value),
                literal(RunTrigger.INITIAL.value),
                inserted.c.created_at,
            ),
        )
        .returning(runs.c.run_id)
        .cte("first_run")
    )
    return select(*inserted.c).add_cte(first_run)


def _first_claim(lease: Lease | None, claimable_at: datetime) -> dict[str, Any]:
    """The claim columns of a new execution: unclaimed and claimable at ``claimable_at``, or
    held by ``lease`` (claimable again only when it expires, like any claim)."""
    if lease is None:
        return {
            "status": ExecutionStatus.SCHEDULED.value,
            "claimable_at": claimable_at,
            "claim_count": 0,
            "lease_token": None,
            "lease_owner": None,
        }
    return {
        "status": ExecutionStatus.RUNNING.value,
        "claimable_at": lease.expires_at,
        "claim_count": 1,
        "lease_token": lease.token,
        "lease_owner": lease.owner,
    }


def _existing(
    existing: ExecutionRecord | None, execution_id: str, task_name: str, payload: Any
) -> CreatedExecution:
    """The execution a start with an existing ``execution_id`` refers to (see
    :func:`create_execution`)."""
    if existing is None:  # pragma: no cover - the conflicting row was deleted meanwhile
        raise ExecutionAlreadyExists(execution_id, "unknown", "it was concurrently removed")
    if existing.task_name != task_name:
        raise ExecutionAlreadyExists(
            execution_id,
            existing.status,
            f"it runs task {existing.task_name!r}, not {task_name!r}",
        )
    if existing.payload != payload:
        raise ExecutionAlreadyExists(
            execution_id, existing.status, "it was started with a different payload"
        )
    return CreatedExecution(existing, created=False)


async def get_execution(conn: AsyncConnection, execution_id: str) -> ExecutionRecord | None:
    row = (await conn.execute(_get_statement(), {"execution_id": execution_id})).first()
    return None if row is None else _record(row)


@functools.cache
def _get_statement() -> Any:
    return select(executions).where(executions.c.execution_id == bindparam("execution_id"))


@dataclass(frozen=True, slots=True)
class ExecutionFilter:
    """Which executions a listing returns; every field is optional."""

    status: ExecutionStatus | None = None
    task_name: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    search: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.status is not None:
            conditions.append(executions.c.status == self.status.value)
        if self.task_name is not None:
            conditions.append(executions.c.task_name == self.task_name)
        if self.created_from is not None:
            conditions.append(executions.c.created_at >= self.created_from)
        if self.created_to is not None:
            conditions.append(executions.c.created_at <= self.created_to)
        if self.search:
            pattern = f"%{_escape_like(self.search)}%"
            conditions.append(
                or_(
                    executions.c.execution_id.ilike(pattern, escape="\\"),
                    executions.c.task_name.ilike(pattern, escape="\\"),
                )
            )
        return conditions


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_executions(
    conn: AsyncConnection,
    where: ExecutionFilter = ExecutionFilter(),
    *,
    sort_by: SortField = "created_at",
    descending: bool = True,
    limit: int = 20,
    offset: int = 0,
) -> ExecutionPage:
    """One page of executions matching ``where`` and the total count of matches."""
    conditions = where.conditions()
    column = executions.c[sort_by]
    order = [column.desc() if descending else column.asc(), executions.c.execution_id.asc()]
    rows = await conn.execute(
        select(executions).where(*conditions).order_by(*order).limit(limit).offset(offset)
    )
    total = await conn.scalar(select(func.count()).select_from(executions).where(*conditions))
    return ExecutionPage(items=tuple(_record(r) for r in rows), total=int(total or 0))


async def count_executions_by_status(conn: AsyncConnection) -> dict[ExecutionStatus, int]:
    """How many executions are in each status (every status present, zero when none)."""
    rows = await conn.execute(
        select(executions.c.status, func.count()).group_by(executions.c.status)
    )
    counts = dict.fromkeys(ExecutionStatus, 0)
    for status, count in rows:
        counts[ExecutionStatus(status)] = int(count)
    return counts


async def cancel_execution(
    conn: AsyncConnection, execution_id: str, *, now: datetime
) -> ExecutionRecord | None:
    """Cancel an unfinished execution; ``None`` when it is unknown or already finished.

    Clearing the lease token fences out a worker that is running it: the worker stops the run
    when it learns of it (at once in the same process, else at its next heartbeat or
    checkpoint, whichever comes first); a checkpoint written after the cancel is refused, so no
    further step runs.
    """
    row = (
        await conn.execute(
            update(executions)
            .where(
                executions.c.execution_id == execution_id,
                executions.c.status.in_([s.value for s in _ACTIVE]),
            )
            .values(
                _leaving_worker(ExecutionStatus.CANCELLED, now, claimable_at=None, completed_at=now)
            )
            .returning(*executions.c)
        )
    ).first()
    if row is None:
        return None
    record = _record(row)
    await _finish_run(conn, record.run_id, ExecutionStatus.CANCELLED, None, None, now)
    return record


# ---------------------------------------------------------------------------------------------
# Worker: the concurrency-critical statements


async def claim_ready_executions(
    conn: AsyncConnection,
    *,
    worker_id: str,
    task_names: Iterable[str],
    limit: int,
    now: datetime,
    lease_timeout: timedelta,
) -> list[ClaimedExecution]:
    """Claim up to ``limit`` executions that are due (or whose lease expired) for this worker.

    Safe under concurrency because the candidate rows are chosen with ``FOR UPDATE SKIP
    LOCKED`` inside a materialized CTE (evaluated once; PostgreSQL): two claimers never lock the
    same row, and a row another transaction is changing is skipped rather than waited for. On
    SQLite the transaction began with ``BEGIN IMMEDIATE``, so only one claimer runs at a time.
    Each claimed execution comes with its status before the claim (``waiting``: woken up).
    All executions claimed by one call share one fresh lease token; the fence always matches on
    (execution_id, token), so sharing it across different executions is safe.

    The statements are the ones the worker runs on its driver connections
    (:func:`claim_ready_executions_driver`, :func:`claim_ready_executions_sqlite`), executed
    here through SQLAlchemy.
    """
    names = list(task_names)
    if not names or limit <= 0:
        return []
    claim = _ClaimParameters(worker_id, names, limit, now, now + lease_timeout)
    if is_postgresql(conn):
        rows = (await conn.execute(_claim_statement_pg(), claim.postgresql())).mappings().all()
        return claim.claimed(rows, {r["execution_id"]: r["previous_status"] for r in rows})
    params = claim.sqlite()
    previous = {
        r.execution_id: r.previous_status for r in await conn.execute(_claim_due_sqlite(), params)
    }
    if not previous:
        return []
    ids = raw.json_list(list(previous))
    rows = (await conn.execute(_claim_update_sqlite(), {**params, "ids": ids})).mappings().all()
    return claim.claimed(rows, previous)


@dataclass(frozen=True, slots=True)
class _ClaimParameters:
    """One claim's parameters (a fresh lease token shared by the batch) and its results."""

    worker_id: str
    task_names: list[str]
    limit: int
    now: datetime
    expires_at: datetime
    token: str = field(default_factory=lambda: str(uuid.uuid4()))

    def postgresql(self) -> dict[str, Any]:
        return {**self._common(), "task_names": self.task_names, "active": _ACTIVE_VALUES}

    def sqlite(self) -> dict[str, Any]:
        names, active = raw.json_list(self.task_names), raw.json_list(_ACTIVE_VALUES)
        return {**self._common(), "task_names": names, "active": active}

    def _common(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "now": self.now,
            "token": self.token,
            "worker_id": self.worker_id,
            "expires_at": self.expires_at,
        }

    def claimed(
        self, rows: Iterable[Mapping[Any, Any]], previous: Mapping[str, str]
    ) -> list[ClaimedExecution]:
        return [
            ClaimedExecution(
                lease=Lease(r["execution_id"], self.token, self.worker_id, self.expires_at),
                execution=_record_of(r),
                previous_status=ExecutionStatus(previous[r["execution_id"]]),
            )
            for r in rows
        ]


async def claim_ready_executions_driver(
    session: Any,
    *,
    worker_id: str,
    task_names: Iterable[str],
    limit: int,
    now: datetime,
    lease_timeout: timedelta,
    wake: bool = False,
) -> list[ClaimedExecution]:
    """:func:`claim_ready_executions` on a PostgreSQL driver connection (a
    :class:`zart.database.DriverSession`): the same ``FOR UPDATE SKIP LOCKED`` statement,
    compiled once.

    ``wake``: the same statement also does, for the runs it brings back from ``waiting``, what
    each would otherwise do one by one: their due timers fire and their due sleeps are
    completed (:func:`zart.repositories.timers.fire_due_timers`,
    :func:`zart.repositories.steps.complete_due_sleeps`). One statement, so it can run in
    autocommit: one round trip and one commit for the whole claim."""
    names = list(task_names)
    if not names or limit <= 0:
        return []
    claim = _ClaimParameters(worker_id, names, limit, now, now + lease_timeout)
    if wake:
        statement = raw.compiled(
            "claim_wake", _claim_wake_statement_pg, session.dialect, session.schema_map
        )
    else:
        statement = raw.compiled("claim", _claim_statement_pg, session.dialect, session.schema_map)
    rows = await statement.fetch(session.connection, claim.postgresql())
    return claim.claimed(rows, {r["execution_id"]: r["previous_status"] for r in rows})


def claim_ready_executions_sqlite(
    session: Any,
    *,
    worker_id: str,
    task_names: Iterable[str],
    limit: int,
    now: datetime,
    lease_timeout: timedelta,
) -> list[ClaimedExecution]:
    """:func:`claim_ready_executions` on SQLite's writer connection, inside its ``BEGIN
    IMMEDIATE`` transaction (which holds the only write lock: read-then-update is safe)."""
    names = list(task_names)
    if not names or limit <= 0:
        return []
    claim = _ClaimParameters(worker_id, names, limit, now, now + lease_timeout)
    params = claim.sqlite()
    due = raw.compiled("claim_due", _claim_due_sqlite, session.dialect, None)
    previous = {
        r["execution_id"]: r["previous_status"] for r in due.run(session.connection, params)
    }
    if not previous:
        return []
    update_ = raw.compiled("claim_update", _claim_update_sqlite, session.dialect, None)
    rows = update_.run(session.connection, {**params, "ids": raw.json_list(list(previous))})
    return claim.claimed(rows, previous)


@functools.cache
def _claim_due_sqlite() -> Any:
    return (
        select(executions.c.execution_id, executions.c.status.label("previous_status"))
        .where(
            executions.c.claimable_at <= bindparam("now", type_=executions.c.claimable_at.type),
            raw.in_json_list(executions.c.task_name, "task_names"),
            raw.in_json_list(executions.c.status, "active"),
        )
        .order_by(executions.c.claimable_at)
        .limit(bindparam("limit"))
    )


@functools.cache
def _claim_update_sqlite() -> Any:
    return (
        update(executions)
        .where(raw.in_json_list(executions.c.execution_id, "ids"))
        .values(
            status=ExecutionStatus.RUNNING.value,
            lease_token=bindparam("token"),
            lease_owner=bindparam("worker_id"),
            claimable_at=bindparam("expires_at", type_=executions.c.claimable_at.type),
            claim_count=executions.c.claim_count + 1,
            updated_at=bindparam("now", type_=executions.c.updated_at.type),
            version=executions.c.version + 1,
        )
        .returning(*executions.c)
    )


@functools.cache
def _claim_statement_pg() -> Any:
    candidates, claimed = _claim_ctes_pg()
    return select(*claimed.c, candidates.c.previous_status).join_from(
        claimed, candidates, claimed.c.execution_id == candidates.c.execution_id
    )


@functools.cache
def _claim_ctes_pg() -> tuple[Any, Any]:
    """The claim's two CTEs: ``candidates`` (locked, with their previous status) and
    ``claimed`` (the updated rows)."""
    now = bindparam("now", type_=executions.c.updated_at.type)
    candidates = (
        select(executions.c.execution_id, executions.c.status.label("previous_status"))
        .where(
            executions.c.claimable_at <= now,
            executions.c.task_name == any_(bindparam("task_names", type_=ARRAY(String))),
            executions.c.status == any_(bindparam("active", type_=ARRAY(String))),
        )
        .order_by(executions.c.claimable_at)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
        .cte("candidates")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    return candidates, _claimed_cte(candidates)


def _lease_expiry() -> Any:
    return bindparam("expires_at", type_=executions.c.claimable_at.type)


def _claimed_cte(candidates: Any, claimable_at: Any = None) -> Any:
    """The UPDATE that leases the locked ``candidates`` (a CTE with their ``execution_id``);
    ``claimable_at`` defaults to the lease's expiry."""
    # The UPDATE finds the candidates by primary key (an array of their ids) rather than by
    # joining them: a join let PostgreSQL hash them against a scan of the whole table (~10 ms
    # per claim on 10,000 rows, more the more are stored), and a table whose statistics say
    # it is tiny could get a nested loop over such scans. Their previous status is joined to
    # the RETURNING rows, both at most `limit` long.
    return (
        update(executions)
        .where(
            executions.c.execution_id
            == any_(func.array(select(candidates.c.execution_id).scalar_subquery()))
        )
        .values(
            status=ExecutionStatus.RUNNING.value,
            lease_token=bindparam("token"),
            lease_owner=bindparam("worker_id"),
            claimable_at=_lease_expiry() if claimable_at is None else claimable_at,
            claim_count=executions.c.claim_count + 1,
            updated_at=bindparam("now", type_=executions.c.updated_at.type),
            version=executions.c.version + 1,
        )
        .returning(*executions.c)
        .cte("claimed")
    )


@functools.cache
def _claim_wake_statement_pg() -> Any:
    """:func:`_claim_statement_pg` plus, for the runs it woke (``waiting`` before), their due
    timers fired and their due sleeps completed, in the same statement. Both updates find the
    woken runs by an array of their ids, like the claim finds its candidates (see there)."""
    candidates, claimed = _claim_ctes_pg()
    woken = (
        select(claimed.c.current_run_id)
        .join_from(claimed, candidates, claimed.c.execution_id == candidates.c.execution_id)
        .where(candidates.c.previous_status == ExecutionStatus.WAITING.value)
        .cte("woken")
    )
    woken_runs = any_(func.array(select(woken.c.current_run_id).scalar_subquery()))
    fired = timers_repo.due_timers_fired(timers.c.run_id == woken_runs).cte("fired")
    slept = steps_repo.due_sleeps_completed(steps.c.run_id == woken_runs).cte("slept")
    return _claim_statement_pg().add_cte(fired).add_cte(slept)


async def claim_ahead_driver(
    session: Any,
    *,
    worker_id: str,
    task_names: Iterable[str],
    limit: int,
    now: datetime,
    horizon: datetime,
    lease_timeout: timedelta,
) -> list[tuple[ClaimedExecution, datetime]]:
    """Claim up to ``limit`` waiting executions that become due by ``horizon`` (a little after
    ``now``), before they are due, each with the time it is due: the worker holds them and
    starts them then, so a crowd of sleepers due at the same instant costs no claim when it
    comes. Only waits a timer ends are taken: a run waiting for an event stays where an event
    wakes it at once.

    The same statement does what waking them will need, ahead of time: the timers due by
    then are marked fired at their fire time, and the sleeps due by then completed at their
    wake time (a sleep runs no handler code), so starting them when due writes nothing. That
    is safe because nothing can resume them before they are due: the holder starts them then,
    and should it die, they become claimable again at their lease expiry or their due time,
    whichever is later (also after a renewal, :func:`renew_leases`). PostgreSQL, on a driver
    connection; one autocommit statement."""
    names = list(task_names)
    if not names or limit <= 0:
        return []
    claim = _ClaimParameters(worker_id, names, limit, now, now + lease_timeout)
    statement = raw.compiled(
        "claim_ahead", _claim_ahead_statement_pg, session.dialect, session.schema_map
    )
    rows = await statement.fetch(session.connection, {**claim.postgresql(), "horizon": horizon})
    claimed = claim.claimed(rows, {r["execution_id"]: r["previous_status"] for r in rows})
    return [(c, r["due_at"]) for c, r in zip(claimed, rows, strict=True)]


@functools.cache
def _claim_ahead_statement_pg() -> Any:
    waits_for_event = (
        select(steps.c.step_id)
        .where(
            steps.c.run_id == executions.c.current_run_id,
            steps.c.kind == StepKind.EVENT.value,
            steps.c.status == StepStatus.WAITING.value,
        )
        .exists()
    )
    candidates = (
        select(
            executions.c.execution_id,
            executions.c.status.label("previous_status"),
            executions.c.claimable_at.label("due_at"),
        )
        .where(
            executions.c.claimable_at <= bindparam("horizon", type_=executions.c.claimable_at.type),
            executions.c.task_name == any_(bindparam("task_names", type_=ARRAY(String))),
            executions.c.status == ExecutionStatus.WAITING.value,
            ~waits_for_event,
        )
        .order_by(executions.c.claimable_at)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
        .cte("candidates")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    # Never claimable again before it is due, even should the lease expire sooner.
    claimed = _claimed_cte(candidates, func.greatest(_lease_expiry(), executions.c.claimable_at))
    ahead = (
        select(claimed.c.current_run_id.label("run_id"), candidates.c.due_at)
        .join_from(claimed, candidates, claimed.c.execution_id == candidates.c.execution_id)
        .cte("ahead")
    )
    fired = timers_repo.due_timers_fired(
        timers.c.run_id == ahead.c.run_id, due=ahead.c.due_at, fired_at=timers.c.fire_at
    ).cte("fired")
    slept = steps_repo.due_sleeps_completed(
        steps.c.run_id == ahead.c.run_id, due=ahead.c.due_at, completed_at=steps.c.wake_at
    ).cte("slept")
    return (
        select(*claimed.c, candidates.c.previous_status, candidates.c.due_at)
        .join_from(claimed, candidates, claimed.c.execution_id == candidates.c.execution_id)
        .add_cte(fired)
        .add_cte(slept)
    )


async def still_held_driver(session: Any, leases: Sequence[Lease]) -> set[str]:
    """Of executions claimed ahead (:func:`claim_ahead_driver`), those whose lease still
    holds: one missing was cancelled or taken over while it was held. One read, the fence
    a held execution passes before it is started."""
    if not leases:
        return set()
    statement = raw.compiled(
        "still_held", _still_held_statement_pg, session.dialect, session.schema_map
    )
    rows = await statement.fetch(
        session.connection,
        {
            "h_execution_id": [lease.execution_id for lease in leases],
            "h_token": [lease.token for lease in leases],
        },
    )
    return {row["execution_id"] for row in rows}


def _still_leased(items: Any, *columns: Any) -> Any:
    """``columns`` of the executions ``items`` (with ``execution_id`` and ``token``) names
    that are still ``running`` under those leases: the fence of every group statement."""
    return (
        select(*columns)
        .join(
            items,
            and_(
                executions.c.execution_id == items.c.execution_id,
                executions.c.lease_token == items.c.token,
            ),
        )
        .where(executions.c.status == ExecutionStatus.RUNNING.value)
    )


def _locked_still_leased(items: Any, *columns: Any) -> Any:
    """:func:`_still_leased` as the CTE ``locked``: those rows locked in ``execution_id``
    order, as every multi-row locker locks them, so two never deadlock. The statement then
    updates them by primary key and takes their new values from ``columns``."""
    return (
        _still_leased(items, *columns)
        .order_by(executions.c.execution_id)
        .with_for_update(of=executions)
        .cte("locked")
    )


@functools.cache
def _still_held_statement_pg() -> Any:
    items = (
        func.unnest(
            bindparam("h_execution_id", type_=ARRAY(String)),
            bindparam("h_token", type_=ARRAY(String)),
        )
        .table_valued("execution_id", "token")
        .render_derived(name="items")
    )
    return _still_leased(items, executions.c.execution_id)


async def release_held_driver(
    session: Any, held: Sequence[tuple[Lease, datetime]], *, now: datetime
) -> int:
    """Give back executions claimed ahead and not started (the worker stops): ``waiting``
    again until the time each is due, as they were. Fenced; returns how many were still
    held."""
    if not held:
        return 0
    statement = raw.compiled(
        "release_held", _release_held_statement_pg, session.dialect, session.schema_map
    )
    rows = await statement.fetch(
        session.connection,
        {
            "r_execution_id": [lease.execution_id for lease, _ in held],
            "r_token": [lease.token for lease, _ in held],
            "r_due_at": [due_at for _, due_at in held],
            "now": now,
        },
    )
    return len(rows)


@functools.cache
def _release_held_statement_pg() -> Any:
    items = (
        func.unnest(
            bindparam("r_execution_id", type_=ARRAY(String)),
            bindparam("r_token", type_=ARRAY(String)),
            bindparam("r_due_at", type_=ARRAY(executions.c.claimable_at.type)),
        )
        .table_valued("execution_id", "token", "due_at")
        .render_derived(name="items")
    )
    locked = _locked_still_leased(items, executions.c.execution_id, items.c.due_at)
    now = bindparam("now", type_=executions.c.updated_at.type)
    return (
        update(executions)
        .where(executions.c.execution_id == locked.c.execution_id)
        .values(
            status=ExecutionStatus.WAITING.value,
            lease_token=None,
            lease_owner=None,
            updated_at=now,
            version=executions.c.version + 1,
            claimable_at=locked.c.due_at,
        )
        .returning(executions.c.execution_id)
    )


async def renew_leases(
    conn: AsyncConnection, leases: Sequence[Lease], *, now: datetime, lease_timeout: timedelta
) -> tuple[list[Lease], list[Lease]]:
    """Heartbeat: push the expiry of still-held leases forward.

    Returns ``(renewed, lost)``. A lease is lost when its token no longer matches: the execution
    was taken over, cancelled or finished. Fenced like every other write.
    """
    if not leases:
        return [], []
    expires_at = now + lease_timeout
    held: set[tuple[str, str]] = set()
    # Plain IN lists on the primary key, in chunks: a row-value IN of thousands of pairs
    # overflows PostgreSQL's parser stack, and drivers cap the parameters of one statement.
    # The few tokens of a chunk (one per claim batch) are matched exactly below.
    for start in range(0, len(leases), RENEW_CHUNK):
        chunk = leases[start : start + RENEW_CHUNK]
        # The rows are locked in execution_id order, as a group of checkpoints locks them
        # (steps.record_step_outcomes_driver): two multi-row lockers never deadlock.
        locked = (
            select(executions.c.execution_id)
            .where(
                executions.c.execution_id.in_([lease.execution_id for lease in chunk]),
                executions.c.lease_token.in_({lease.token for lease in chunk}),
                executions.c.status == ExecutionStatus.RUNNING.value,
            )
            .order_by(executions.c.execution_id)
            .with_for_update()
        )
        rows = await conn.execute(
            update(executions)
            .where(executions.c.execution_id.in_(locked.scalar_subquery()))
            # Never sooner than it was: one claimed ahead stays unclaimable until it is due.
            .values(
                claimable_at=case(
                    (executions.c.claimable_at > expires_at, executions.c.claimable_at),
                    else_=literal(expires_at, type_=executions.c.claimable_at.type),
                )
            )
            .returning(executions.c.execution_id, executions.c.lease_token)
        )
        held.update((r.execution_id, r.lease_token) for r in rows)
    renewed = [
        Lease(lease.execution_id, lease.token, lease.owner, expires_at)
        for lease in leases
        if (lease.execution_id, lease.token) in held
    ]
    lost = [lease for lease in leases if (lease.execution_id, lease.token) not in held]
    return renewed, lost


def _fenced(lease: Lease) -> ColumnElement[bool]:
    return and_(
        executions.c.execution_id == lease.execution_id,
        executions.c.lease_token == lease.token,
    )


async def release_lease(
    conn: AsyncConnection, lease: Lease, *, now: datetime, claimable_at: datetime | None = None
) -> None:
    """Give an execution back unfinished (graceful shutdown): claimable again at once, or at
    ``claimable_at``. Raises :class:`LeaseLost` if the lease was already gone."""
    row = (
        await conn.execute(
            update(executions)
            .where(_fenced(lease), executions.c.status == ExecutionStatus.RUNNING.value)
            .values(
                _leaving_worker(ExecutionStatus.SCHEDULED, now, claimable_at=claimable_at or now)
            )
            .returning(executions.c.execution_id)
        )
    ).first()
    if row is None:
        raise LeaseLost(lease.execution_id)


async def suspend_execution(
    conn: AsyncConnection,
    lease: Lease,
    *,
    run_id: str,
    now: datetime,
    awaited_events: Sequence[str] = (),
) -> ExecutionRecord:
    """Park a running execution as ``waiting`` and release its lease.

    It becomes claimable at its earliest pending timer of ``run_id`` or at its deadline,
    whichever comes first (neither: only an event or an admin can wake it). Safe against a lost
    wake-up: the first statement locks the execution row; the second, a new statement that sees
    every delivery committed before that lock, makes it claimable at once when one of
    ``awaited_events`` is already waiting. A delivery that commits later locks the row after
    our commit and finds it ``waiting``.
    """
    next_timer = (
        select(func.min(timers.c.fire_at))
        .where(timers.c.run_id == run_id, timers.c.fired_at.is_(None))
        .scalar_subquery()
    )
    deadline = executions.c.deadline_at
    # The earlier of the next timer and the execution's deadline (NULL-aware, portable).
    wake_at = case(
        (next_timer.is_(None), deadline),
        (deadline.is_(None), next_timer),
        (next_timer < deadline, next_timer),
        else_=deadline,
    )
    row = (
        await conn.execute(
            update(executions)
            .where(_fenced(lease), executions.c.status == ExecutionStatus.RUNNING.value)
            .values(_leaving_worker(ExecutionStatus.WAITING, now, claimable_at=wake_at))
            .returning(*executions.c)
        )
    ).first()
    if row is None:
        raise LeaseLost(lease.execution_id)
    if awaited_events:
        pending = (
            select(events.c.event_id)
            .where(
                events.c.execution_id == lease.execution_id,
                events.c.name.in_(list(awaited_events)),
                events.c.consumed_at.is_(None),
            )
            .exists()
        )
        woken = (
            await conn.execute(
                update(executions)
                .where(executions.c.execution_id == lease.execution_id, pending)
                .values(claimable_at=now)
                .returning(*executions.c)
            )
        ).first()
        if woken is not None:
            row = woken
    return _record(row)


async def suspend_execution_driver(
    session: Any,
    lease: Lease,
    *,
    run_id: str,
    now: datetime,
    awaited_events: Sequence[str] = (),
) -> ExecutionRecord:
    """:func:`suspend_execution` on a PostgreSQL driver connection, inside the caller's
    transaction: the same two statements (the second only when events are awaited), in the
    same order, so the same lost-wake-up argument holds."""
    params = {
        "fence_execution_id": lease.execution_id,
        "fence_token": lease.token,
        "run_id": run_id,
        "now": now,
        "events": list(awaited_events),
    }
    parked = raw.compiled("suspend", _suspend_statement_pg, session.dialect, session.schema_map)
    rows = await parked.fetch(session.connection, params)
    if not rows:
        raise LeaseLost(lease.execution_id)
    row = rows[0]
    if awaited_events:
        woken = raw.compiled(
            "suspend_woken", _suspend_woken_statement_pg, session.dialect, session.schema_map
        )
        again = await woken.fetch(session.connection, params)
        if again:
            row = again[0]
    return _record_of(row)


@functools.cache
def _suspend_statement_pg() -> Any:
    now = bindparam("now", type_=executions.c.updated_at.type)
    next_timer = (
        select(func.min(timers.c.fire_at))
        .where(timers.c.run_id == bindparam("run_id"), timers.c.fired_at.is_(None))
        .scalar_subquery()
    )
    deadline = executions.c.deadline_at
    wake_at = case(
        (next_timer.is_(None), deadline),
        (deadline.is_(None), next_timer),
        (next_timer < deadline, next_timer),
        else_=deadline,
    )
    return (
        update(executions)
        .where(
            executions.c.execution_id == bindparam("fence_execution_id"),
            executions.c.lease_token == bindparam("fence_token"),
            executions.c.status == ExecutionStatus.RUNNING.value,
        )
        .values(
            status=ExecutionStatus.WAITING.value,
            lease_token=None,
            lease_owner=None,
            updated_at=now,
            version=executions.c.version + 1,
            claimable_at=wake_at,
        )
        .returning(*executions.c)
    )


@functools.cache
def _suspend_woken_statement_pg() -> Any:
    pending = (
        select(events.c.event_id)
        .where(
            events.c.execution_id == bindparam("fence_execution_id"),
            events.c.name == any_(bindparam("events", type_=ARRAY(String))),
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


async def finish_execution(
    conn: AsyncConnection,
    lease: Lease,
    *,
    status: Literal[ExecutionStatus.COMPLETED, ExecutionStatus.FAILED],
    result: Any = None,
    error: Any = None,
    now: datetime,
) -> ExecutionRecord:
    """Record the handler's result (or failure) on the execution and its current run, and
    release the lease. Fenced: raises :class:`LeaseLost` when the lease was taken over."""
    if status not in (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED):
        raise ValueError(f"finish_execution records completed or failed, not {status!r}")
    row = (
        await conn.execute(
            update(executions)
            .where(_fenced(lease), executions.c.status == ExecutionStatus.RUNNING.value)
            .values(
                _leaving_worker(
                    status,
                    now,
                    result=result,
                    error=error,
                    claimable_at=None,
                    completed_at=now,
                )
            )
            .returning(*executions.c)
        )
    ).first()
    if row is None:
        raise LeaseLost(lease.execution_id)
    record = _record(row)
    await _finish_run(conn, record.run_id, status, result, error, now)
    return record


async def finish_execution_driver(
    session: Any,
    lease: Lease,
    *,
    execution: ExecutionRecord,
    status: Literal[ExecutionStatus.COMPLETED, ExecutionStatus.FAILED],
    result: Any = None,
    error: Any = None,
    now: datetime,
) -> ExecutionRecord:
    """:func:`finish_execution` on a PostgreSQL driver connection in autocommit: the execution
    and its run in **one** statement (a data-modifying CTE), so one round trip and one commit.
    Fenced the same way: raises :class:`LeaseLost`, having changed nothing.

    ``execution`` is the record the claim behind ``lease`` returned: the finished record is
    made of it and the values written (see :func:`_finished`), not read back."""
    if status not in (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED):
        raise ValueError(f"finish_execution records completed or failed, not {status!r}")
    _check_claimed(lease, execution)
    statement = raw.compiled("finish", _finish_statement_pg, session.dialect, session.schema_map)
    rows = await statement.fetch(
        session.connection,
        {
            "fence_execution_id": lease.execution_id,
            "fence_token": lease.token,
            "status": status.value,
            "result": result,
            "error": error,
            "now": now,
        },
    )
    if not rows:
        raise LeaseLost(lease.execution_id)
    return _finished(execution, status, result, error, rows[0])


def finish_execution_sqlite(
    session: Any,
    lease: Lease,
    *,
    status: Literal[ExecutionStatus.COMPLETED, ExecutionStatus.FAILED],
    result: Any = None,
    error: Any = None,
    now: datetime,
) -> ExecutionRecord:
    """:func:`finish_execution` on SQLite's writer connection, inside its transaction."""
    if status not in (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED):
        raise ValueError(f"finish_execution records completed or failed, not {status!r}")
    params = {
        "fence_execution_id": lease.execution_id,
        "fence_token": lease.token,
        "status": status.value,
        "result": result,
        "error": error,
        "now": now,
    }
    finished = raw.compiled("finish", _finish_execution_sqlite, session.dialect, None)
    rows = finished.run(session.connection, params)
    if not rows:
        raise LeaseLost(lease.execution_id)
    record = _record_of(rows[0])
    run = raw.compiled("finish_run", _finish_run_sqlite, session.dialect, None)
    run.run(session.connection, {**params, "run_id": record.run_id})
    return record


def _finish_execution_sqlite() -> Any:
    now = bindparam("now", type_=executions.c.updated_at.type)
    return (
        update(executions)
        .where(
            executions.c.execution_id == bindparam("fence_execution_id"),
            executions.c.lease_token == bindparam("fence_token"),
            executions.c.status == ExecutionStatus.RUNNING.value,
        )
        .values(
            status=bindparam("status", type_=executions.c.status.type),
            lease_token=None,
            lease_owner=None,
            updated_at=now,
            version=executions.c.version + 1,
            result=bindparam("result", type_=executions.c.result.type),
            error=bindparam("error", type_=executions.c.error.type),
            claimable_at=None,
            completed_at=now,
        )
        .returning(*executions.c)
    )


def _finish_run_sqlite() -> Any:
    return (
        update(runs)
        .where(runs.c.run_id == bindparam("run_id"))
        .values(
            status=bindparam("status", type_=runs.c.status.type),
            result=bindparam("result", type_=runs.c.result.type),
            error=bindparam("error", type_=runs.c.error.type),
            completed_at=bindparam("now", type_=runs.c.completed_at.type),
        )
        .returning(runs.c.run_id)
    )


async def finish_executions_driver(
    session: Any,
    items: Sequence[tuple[Lease, ExecutionRecord, ExecutionStatus, Any, Any]],
    *,
    now: datetime,
) -> list[ExecutionRecord | LeaseLost]:
    """:func:`finish_execution_driver` for several executions in **one** statement (group
    commit): items are ``(lease, claimed_execution, completed_or_failed, result, error)``; per
    item, in order, the finished execution or ``LeaseLost`` (that one changed nothing). The
    rows are locked in ``execution_id`` order, like every statement that locks several of
    them."""
    for lease, execution, status, _result, _error in items:
        if status not in (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED):
            raise ValueError(f"finish_execution records completed or failed, not {status!r}")
        _check_claimed(lease, execution)
    statement = raw.compiled(
        "finish_many", _finish_many_statement_pg, session.dialect, session.schema_map
    )
    rows = await statement.fetch(
        session.connection,
        {
            "g_execution_id": [lease.execution_id for lease, *_ in items],
            "g_token": [lease.token for lease, *_ in items],
            "g_status": [status.value for _, _, status, *_ in items],
            "g_result": [result for *_, result, _ in items],
            "g_error": [error for *_, error in items],
            "now": now,
        },
    )
    finished = {row["execution_id"]: row for row in rows}
    results: list[ExecutionRecord | LeaseLost] = []
    for lease, execution, status, result, error in items:
        row = finished.get(lease.execution_id)
        results.append(
            LeaseLost(lease.execution_id)
            if row is None
            else _finished(execution, status, result, error, row)
        )
    return results


def _check_claimed(lease: Lease, execution: ExecutionRecord) -> None:
    if execution.execution_id != lease.execution_id:
        raise ValueError(
            f"the record of {execution.execution_id!r} given to finish {lease.execution_id!r}"
        )


def _finished(
    execution: ExecutionRecord,
    status: ExecutionStatus,
    result: Any,
    error: Any,
    row: Mapping[str, Any],
) -> ExecutionRecord:
    """The record a driver finish statement made of ``execution``, without reading it back.

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
    )


def _finished_columns(finished: Any) -> tuple[Any, ...]:
    """What a driver finish statement returns of the ``finished`` rows (see :func:`_finished`)."""
    c = finished.c
    return (c.execution_id, c.version, c.updated_at, c.completed_at)


@functools.cache
def _finish_many_statement_pg() -> Any:
    now = bindparam("now", type_=executions.c.updated_at.type)
    names = ("execution_id", "token", "status", "result", "error")
    types = (String(), String(), String(), executions.c.result.type, executions.c.error.type)
    unnested = (
        func.unnest(
            *(bindparam(f"g_{n}", type_=ARRAY(t)) for n, t in zip(names, types, strict=True))
        )
        .table_valued(*names)
        .render_derived(name="items")
    )
    items = select(*unnested.c).cte("items")
    # The new values ride along with the locked ids, so the update below joins one CTE to the
    # table by primary key. Joining ``items`` there as well let the planner, which guesses 10
    # rows for an unnest, filter ``items`` once per updated row: quadratic in the batch.
    locked = _locked_still_leased(
        items, executions.c.execution_id, items.c.status, items.c.result, items.c.error
    )
    finished = (
        update(executions)
        .where(executions.c.execution_id == locked.c.execution_id)
        .values(
            status=locked.c.status,
            lease_token=None,
            lease_owner=None,
            updated_at=now,
            version=executions.c.version + 1,
            result=locked.c.result,
            error=locked.c.error,
            claimable_at=None,
            completed_at=now,
        )
        .returning(*executions.c)
        .cte("finished")
    )
    run = (
        update(runs)
        .where(runs.c.run_id == finished.c.current_run_id)
        .values(
            status=finished.c.status,
            result=finished.c.result,
            error=finished.c.error,
            completed_at=now,
        )
        .returning(runs.c.run_id)
        .cte("run")
    )
    return select(*_finished_columns(finished)).add_cte(run)


@functools.cache
def _finish_statement_pg() -> Any:
    now = bindparam("now", type_=executions.c.updated_at.type)
    status = bindparam("status", type_=executions.c.status.type)
    result = bindparam("result", type_=executions.c.result.type)
    error = bindparam("error", type_=executions.c.error.type)
    finished = (
        update(executions)
        .where(
            executions.c.execution_id == bindparam("fence_execution_id"),
            executions.c.lease_token == bindparam("fence_token"),
            executions.c.status == ExecutionStatus.RUNNING.value,
        )
        .values(
            status=status,
            lease_token=None,
            lease_owner=None,
            updated_at=now,
            version=executions.c.version + 1,
            result=result,
            error=error,
            claimable_at=None,
            completed_at=now,
        )
        .returning(*executions.c)
        .cte("finished")
    )
    run = (
        update(runs)
        .where(runs.c.run_id == finished.c.current_run_id)
        .values(status=status, result=result, error=error, completed_at=now)
        .returning(runs.c.run_id)
        .cte("run")
    )
    return select(*_finished_columns(finished)).add_cte(run)


async def _finish_run(
    conn: AsyncConnection,
    run_id: str,
    status: ExecutionStatus,
    result: Any,
    error: Any,
    now: datetime,
) -> None:
    await conn.execute(
        update(runs)
        .where(runs.c.run_id == run_id)
        .values(status=status.value, result=result, error=error, completed_at=now)
    )


async def lock_execution(
    conn: AsyncConnection, execution_id: str
) -> tuple[ExecutionStatus, str] | None:
    """Lock an execution's row for the rest of the transaction; its status and task name
    (``None``: no such execution). Taking this lock first is what orders an event delivery
    against a concurrent :func:`suspend_execution`: whichever locks second sees the other's
    commit."""
    row = (
        await conn.execute(
            select(executions.c.status, executions.c.task_name)
            .where(executions.c.execution_id == execution_id)
            .with_for_update()
        )
    ).first()
    return None if row is None else (ExecutionStatus(row.status), row.task_name)


async def wake_execution(
    conn: AsyncConnection, execution_id: str, *, now: datetime, event: str | None = None
) -> bool:
    """Make a waiting execution claimable now (a delivered event, an admin action); True when
    it was woken. With ``event``, only if its current run waits for that event (other events
    are kept for later and wake nothing). A running execution keeps its ``claimable_at``: that
    is its lease expiry."""
    conditions = [
        executions.c.execution_id == execution_id,
        executions.c.status == ExecutionStatus.WAITING.value,
        or_(executions.c.claimable_at.is_(None), executions.c.claimable_at > now),
    ]
    if event is not None:
        conditions.append(
            select(steps.c.step_id)
            .where(
                steps.c.run_id == executions.c.current_run_id,
                steps.c.name == event,
                steps.c.kind == StepKind.EVENT.value,
                steps.c.status == StepStatus.WAITING.value,
            )
            .exists()
        )
    row = (
        await conn.execute(
            update(executions)
            .where(*conditions)
            .values(claimable_at=now, version=executions.c.version + 1)
            .returning(executions.c.execution_id)
        )
    ).first()
    return row is not None
