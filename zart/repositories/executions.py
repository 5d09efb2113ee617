"""Executions: create (idempotently), read, list, count, cancel, lock and wake.

The worker's concurrency-critical statements on executions are in :mod:`.claims` (claim,
claim ahead) and :mod:`.leases` (renew, release, suspend, finish).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, bindparam, func, literal, or_, select, update

from zart.errors import ExecutionAlreadyExists
from zart.models import (
    ExecutionRow,
    ExecutionStatus,
    RunRow,
    RunTrigger,
    StepKind,
    StepRow,
    StepStatus,
    table_of,
)
from zart.models.names import compensation_of
from zart.repositories import rows, runs, wakeups
from zart.repositories.executors import Backend, Operation, autocommit, reads
from zart.repositories.records import CreatedExecution, ExecutionPage, ExecutionRecord, Lease
from zart.repositories.statements import Statement, one_of, upsert
from zart.repositories.workers import live_task_names

executions = table_of(ExecutionRow)
run_rows = table_of(RunRow)
steps = table_of(StepRow)

ACTIVE = (ExecutionStatus.SCHEDULED, ExecutionStatus.RUNNING, ExecutionStatus.WAITING)
ACTIVE_VALUES = [s.value for s in ACTIVE]

SortField = Literal["created_at", "status", "task_name", "completed_at"]


def leaving_worker(status: Any, **values: Any) -> dict[str, Any]:
    """The values of a transition that ends a worker's hold on an execution (finish, suspend,
    release, cancel): the new status, no lease (which fences out whoever held it), a new row
    version, ``updated_at = :now``."""
    return {
        "status": status,
        "lease_token": None,
        "lease_owner": None,
        "updated_at": bindparam("now", type_=executions.c.updated_at.type),
        "version": executions.c.version + 1,
        **values,
    }


def _execution_values(keyed: bool = False) -> dict[str, Any]:
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
        "compensates": bindparam("compensates", type_=executions.c.compensates.type),
        "tags": bindparam("tags", type_=executions.c.tags.type),
        "trace_context": bindparam("trace_context", type_=executions.c.trace_context.type),
        "queue_name": bindparam("queue_name", type_=executions.c.queue_name.type),
        "partition_key": bindparam("partition_key", type_=executions.c.partition_key.type),
        "priority": bindparam("priority", type_=executions.c.priority.type),
        "version": 1,
        "created_at": now,
        "updated_at": now,
        **(
            {
                "singleton_key": bindparam("singleton_key", type_=executions.c.singleton_key.type),
                "debounce_key": bindparam("debounce_key", type_=executions.c.debounce_key.type),
            }
            if keyed
            else {}
        ),
    }


def _create(dialect: str, keyed: bool = False) -> Any:
    """The execution, inserted unless its id exists; PostgreSQL: its first run too, as a CTE
    (one statement). ``keyed`` (a singleton or debounced start, :mod:`.start_keys`): with its
    keys, and nothing inserted on a conflict with any unique index (the id, or a key held)."""
    inserted = upsert(executions, dialect).values(_execution_values(keyed))
    inserted = (
        inserted.on_conflict_do_nothing()
        if keyed
        else inserted.on_conflict_do_nothing(index_elements=["execution_id"])
    ).returning(*executions.c)
    if dialect != "postgresql":
        return inserted
    inserted = inserted.cte("inserted")
    first_run = (
        run_rows.insert()
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
        .returning(run_rows.c.run_id)
        .cte("first_run")
    )
    return select(*inserted.c).add_cte(first_run)


def _wake(for_event: bool) -> Any:
    now = bindparam("now", type_=executions.c.claimable_at.type)
    conditions = [
        executions.c.execution_id == bindparam("execution_id"),
        executions.c.status == ExecutionStatus.WAITING.value,
        or_(executions.c.claimable_at.is_(None), executions.c.claimable_at > now),
    ]
    if for_event:  # only if its current run waits for that very event
        conditions.append(
            select(steps.c.step_id)
            .where(
                steps.c.run_id == executions.c.current_run_id,
                steps.c.name == bindparam("event"),
                steps.c.kind == StepKind.EVENT.value,
                steps.c.status == StepStatus.WAITING.value,
            )
            .exists()
        )
    return (
        update(executions)
        .where(*conditions)
        .values(claimable_at=now, version=executions.c.version + 1)
        .returning(executions.c.execution_id)
    )


CREATE = Statement("create_execution", _create)
CREATE_KEYED = Statement("create_keyed_execution", lambda d: _create(d, keyed=True))
CREATE_RUN = Statement(
    "create_run",
    lambda _d: run_rows.insert().values(
        run_id=bindparam("run_id"),
        execution_id=bindparam("execution_id"),
        run_index=1,
        payload=bindparam("payload", type_=run_rows.c.payload.type),
        status=ExecutionStatus.SCHEDULED.value,
        trigger=RunTrigger.INITIAL.value,
        started_at=bindparam("now", type_=run_rows.c.started_at.type),
    ),
)
GET = Statement(
    "get_execution",
    lambda _d: select(executions).where(executions.c.execution_id == bindparam("execution_id")),
)
COUNT_BY_STATUS = Statement(
    "count_executions_by_status",
    lambda _d: select(executions.c.status, func.count().label("count")).group_by(
        executions.c.status
    ),
)
CANCEL = Statement(
    "cancel_execution",
    lambda d: (
        update(executions)
        .where(
            executions.c.execution_id == bindparam("execution_id"),
            one_of(executions.c.status, "active", d),
        )
        .values(
            leaving_worker(
                ExecutionStatus.CANCELLED.value,
                claimable_at=None,
                completed_at=bindparam("now", type_=executions.c.completed_at.type),
            )
        )
        .returning(*executions.c)
    ),
)
LINK_COMPENSATION = Statement(
    "link_compensation",
    lambda _d: (
        update(executions)
        .where(executions.c.execution_id == bindparam("execution_id"))
        .values(compensation_id=bindparam("compensation_id"))
    ),
)
LOCK = Statement(
    "lock_execution",
    lambda _d: (
        select(executions.c.status, executions.c.task_name)
        .where(executions.c.execution_id == bindparam("execution_id"))
        .with_for_update()
    ),
)
LOCK_MANY = Statement(
    "lock_executions",
    lambda d: (
        select(executions.c.execution_id, executions.c.status, executions.c.task_name)
        .where(one_of(executions.c.execution_id, "ids", d))
        .order_by(executions.c.execution_id)
        .with_for_update()
    ),
)
WAKE = Statement("wake_execution", lambda _d: _wake(for_event=False))
WAKE_FOR_EVENT = Statement("wake_execution_for_event", lambda _d: _wake(for_event=True))


def first_claim(lease: Lease | None, claimable_at: datetime) -> dict[str, Any]:
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


@autocommit
def create_execution(
    backend: Backend,
    *,
    execution_id: str,
    task_name: str,
    payload: Any,
    now: datetime,
    claimable_at: datetime | None = None,
    deadline_at: datetime | None = None,
    lease: Lease | None = None,
    channel: str | None = None,
    compensates: str | None = None,
    tags: dict[str, str] | None = None,
    trace_context: dict[str, str] | None = None,
    queue: str = "default",
    partition_key: str | None = None,
    priority: int = 0,
) -> Operation[CreatedExecution]:
    """Insert an execution and its first run, idempotently by ``execution_id``; with
    ``channel``, a new unclaimed one also wakes the workers of its task at commit.

    An existing execution with the same task and payload is returned with ``created=False``;
    one with a different task or payload raises :class:`ExecutionAlreadyExists`. The insert uses
    ``ON CONFLICT DO NOTHING``, so a duplicate never aborts the caller's transaction.
    PostgreSQL: one statement (the run rides along as a CTE), so it may run in autocommit
    (on the worker's connections it is given a ``lease``, never a ``channel``: a NOTIFY
    belongs in the caller's transaction).

    With ``lease`` the execution is inserted already claimed by that lease (``running``, its
    first claim), exactly as a claim (:mod:`.claims`) would leave it: the start of an
    in-process worker's own execution, which then needs no claim (see
    ``DurableScheduler.start``).

    ``compensates`` is the cancelled execution a compensation undoes
    (:func:`cancel_execution`); ``tags`` are stored as given (checked by the caller), NULL
    when empty. An existing execution with other tags is another start. ``queue``,
    ``partition_key`` and ``priority`` place it in a queue (``docs/queues.md``).
    """
    params = {
        "execution_id": execution_id,
        "task_name": task_name,
        "payload": payload,
        "run_id": str(uuid.uuid4()),
        "deadline_at": deadline_at,
        "compensates": compensates,
        "tags": tags or None,
        "trace_context": trace_context or None,
        "queue_name": queue,
        "partition_key": partition_key,
        "priority": priority,
        "now": now,
        **first_claim(lease, claimable_at or now),
    }
    found = yield CREATE, params
    if not found:
        existing = yield from get_execution(backend, execution_id)
        return existing_start(existing, execution_id, task_name, payload, tags or {})
    if not backend.modifying_ctes:
        yield CREATE_RUN, params
    if channel is not None and lease is None:  # sent at commit: the caller's, with session=
        yield from wakeups.notify(backend, channel, task_name)
    return CreatedExecution(rows.execution(found[0]), created=True)


def existing_start(
    existing: ExecutionRecord | None,
    execution_id: str,
    task_name: str,
    payload: Any,
    tags: dict[str, str],
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
    if existing.tags != tags:
        raise ExecutionAlreadyExists(
            execution_id, existing.status, f"it was started with other tags ({existing.tags})"
        )
    return CreatedExecution(existing, created=False)


@reads
def get_execution(backend: Backend, execution_id: str) -> Operation[ExecutionRecord | None]:
    found = yield GET, {"execution_id": execution_id}
    return rows.execution(found[0]) if found else None


@dataclass(frozen=True, slots=True)
class ExecutionFilter:
    """Which executions a listing returns; every field is optional."""

    status: ExecutionStatus | None = None
    task_name: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    search: str | None = None
    #: Executions carrying every one of these tags (checked by the caller).
    tags: dict[str, str] | None = None
    #: Executions in one of these statuses (with ``status``: in both).
    statuses: tuple[ExecutionStatus, ...] = ()

    def conditions(self, dialect: str) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.tags:
            conditions.append(_tagged(self.tags, dialect))
        if self.status is not None:
            conditions.append(executions.c.status == self.status.value)
        if self.statuses:
            # One comparison each (a handful): the listing compiles without expanding IN.
            conditions.append(or_(*(executions.c.status == s.value for s in self.statuses)))
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


def _tagged(tags: dict[str, str], dialect: str) -> ColumnElement[bool]:
    """The execution carries all of ``tags``: ``tags @> :tags`` on PostgreSQL (the GIN index
    serves it), one ``json_extract`` comparison per tag on SQLite."""
    column = executions.c.tags
    if dialect == "postgresql":
        contains = column.op("@>", is_comparison=True)
        return contains(bindparam("tags", tags, type_=column.type))
    return and_(
        *(
            func.json_extract(column, f'$."{key}"') == bindparam(f"tag_{i}", value)
            for i, (key, value) in enumerate(tags.items())
        )
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@reads
def list_executions(
    backend: Backend,
    where: ExecutionFilter = ExecutionFilter(),
    *,
    sort_by: SortField = "created_at",
    descending: bool = True,
    limit: int = 20,
    offset: int = 0,
) -> Operation[ExecutionPage]:
    """One page of executions matching ``where`` and the total count of matches."""
    column = executions.c[sort_by]
    order = [column.desc() if descending else column.asc(), executions.c.execution_id.asc()]

    def page(dialect: str) -> Any:
        found = select(executions).where(*where.conditions(dialect))
        return found.order_by(*order).limit(limit).offset(offset)

    items = yield Statement.adhoc("list_executions", page), {}
    total = yield from count_matching(backend, where)
    return ExecutionPage(items=tuple(rows.execution(r) for r in items), total=total)


@reads
def count_matching(backend: Backend, where: ExecutionFilter) -> Operation[int]:
    """How many executions match ``where``."""

    def count(dialect: str) -> Any:
        total = select(func.count().label("total")).select_from(executions)
        return total.where(*where.conditions(dialect))

    found = yield Statement.adhoc("count_executions", count), {}
    return int(found[0]["total"] or 0)


@reads
def matching_ids(
    backend: Backend, where: ExecutionFilter, *, after: str | None, limit: int
) -> Operation[list[str]]:
    """The ids of up to ``limit`` executions matching ``where``, in id order, after ``after``:
    a keyset page, which stays correct while the executions already seen change (a bulk
    action walks the matches this way)."""

    def page(dialect: str) -> Any:
        found = select(executions.c.execution_id).where(*where.conditions(dialect))
        if after is not None:
            found = found.where(executions.c.execution_id > after)
        return found.order_by(executions.c.execution_id).limit(limit)

    found = yield Statement.adhoc("matching_execution_ids", page), {}
    return [row["execution_id"] for row in found]


@reads
def count_executions_by_status(backend: Backend) -> Operation[dict[ExecutionStatus, int]]:
    """How many executions are in each status (every status present, zero when none)."""
    counts = dict.fromkeys(ExecutionStatus, 0)
    for row in (yield COUNT_BY_STATUS, {}):
        counts[ExecutionStatus(row["status"])] = int(row["count"])
    return counts


def cancel_execution(
    backend: Backend,
    execution_id: str,
    *,
    now: datetime,
    compensated: Collection[str] = frozenset(),
    seen_since: datetime | None = None,
    channel: str | None = None,
) -> Operation[ExecutionRecord | None]:
    """Cancel an unfinished execution (and its current run); ``None`` when it is unknown or
    already finished.

    Clearing the lease token fences out a worker that is running it: the worker stops the run
    when it learns of it (at once in the same process, else at its next heartbeat or
    checkpoint, whichever comes first); a checkpoint written after the cancel is refused, so no
    further step runs.

    When a worker had begun it (``claim_count > 0``: one never claimed ran no code) and its task
    declares ``on_cancel``, its compensation is started here, in the same transaction: an
    execution of task ``"<task>:on_cancel"`` on the same payload, linked both ways
    (``compensation_id``, ``compensates``), which wakes the workers of that task at commit
    (``channel``). Whether the task declares one is known from ``compensated`` (the task names
    with ``on_cancel`` in the cancelling process), else from the workers alive since
    ``seen_since`` that run its compensation task (the cancelling process may import no
    handlers: ``zart cancel``, the HTTP API).
    """
    found = yield CANCEL, {"execution_id": execution_id, "active": ACTIVE_VALUES, "now": now}
    if not found:
        return None
    record = rows.execution(found[0])
    yield from runs.end_run(backend, record.run_id, ExecutionStatus.CANCELLED, now=now)
    if record.claim_count == 0:
        return record
    task_name = compensation_of(record.task_name)
    if record.task_name not in compensated and (
        seen_since is None
        or task_name not in (yield from live_task_names(backend, seen_since=seen_since))
    ):
        return record
    compensation = yield from create_execution(
        backend,
        execution_id=str(uuid.uuid4()),
        task_name=task_name,
        payload=record.payload,
        now=now,
        channel=channel,
        compensates=execution_id,
    )
    compensation_id = compensation.execution.execution_id
    yield LINK_COMPENSATION, {"execution_id": execution_id, "compensation_id": compensation_id}
    return replace(record, compensation_id=compensation_id)


def lock_execution(
    backend: Backend, execution_id: str
) -> Operation[tuple[ExecutionStatus, str] | None]:
    """Lock an execution's row for the rest of the transaction; its status and task name
    (``None``: no such execution). Taking this lock first is what orders an event delivery
    against a concurrent suspension (:func:`.leases.suspend_execution`): whichever locks
    second sees the other's commit. (SQLite: ``BEGIN IMMEDIATE`` is the lock.)"""
    found = yield LOCK, {"execution_id": execution_id}
    return (ExecutionStatus(found[0]["status"]), found[0]["task_name"]) if found else None


def lock_executions(
    backend: Backend, execution_ids: Collection[str]
) -> Operation[dict[str, tuple[ExecutionStatus, str]]]:
    """Lock several execution rows at once, in ``execution_id`` order (the database's), the
    order the heartbeat and the group checkpoints lock theirs in: a transaction that needs two
    rows (a child's and its parent's, a sender's and a receiver's) and takes them here never
    waits in a cycle with those. Their status and task name, by id (unknown ids are left
    out)."""
    found = yield LOCK_MANY, {"ids": sorted(set(execution_ids))}
    return {r["execution_id"]: (ExecutionStatus(r["status"]), r["task_name"]) for r in found}


def wake_execution(
    backend: Backend, execution_id: str, *, now: datetime, event: str | None = None
) -> Operation[bool]:
    """Make a waiting execution claimable now (a delivered event, an admin action); True when
    it was woken. With ``event``, only if its current run waits for that event (other events
    are kept for later and wake nothing). A running execution keeps its ``claimable_at``: that
    is its lease expiry."""
    params = {"execution_id": execution_id, "now": now, "event": event}
    found = yield (WAKE if event is None else WAKE_FOR_EVENT), params
    return bool(found)
