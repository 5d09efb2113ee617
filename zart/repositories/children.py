"""Child executions: started as a step of their parent, their end told to the parent as a
reserved event, cancelled with it.

Lock order, everywhere: a transaction that writes a child's row and its parent's locks
**both first, in one statement, in ``execution_id`` order**
(:func:`~zart.repositories.executions.lock_executions`; ``docs/architecture.md``, "Child
executions and messages"): a child's finish, a child's cancel, a parent's cancel (its whole
family). So a child finishing while its parent is cancelled never waits for the other in a
cycle on PostgreSQL, nor with a heartbeat or a group checkpoint, which lock in that order too
(SQLite's one writer orders them anyway).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import bindparam, select, update

from zart.errors import ExecutionAlreadyExists
from zart.models import ExecutionRow, table_of
from zart.models.tables import ID
from zart.repositories import rows, steps, wakeups
from zart.repositories.events import DELIVER
from zart.repositories.executions import (
    ACTIVE_VALUES,
    cancel_execution,
    create_execution,
    lock_executions,
    wake_execution,
)
from zart.repositories.executors import Backend, Operation, reads
from zart.repositories.leases import Ended, finish_execution
from zart.repositories.records import CreatedExecution, ExecutionRecord, Lease
from zart.repositories.statements import Statement, one_of

executions = table_of(ExecutionRow)

#: Event names with this prefix are Zart's own (a child's end, a message): they contain a
#: ``/``, which every outside edge refuses in an event name (``check_path_segment``), so no
#: ``offer_event``, HTTP call or ``zart event send`` can forge one.
RESERVED_EVENT_PREFIX = "zart/"
CHILD_EVENT_PREFIX = "zart/child/"

ParentClose = Literal["cancel", "abandon"]
PARENT_CLOSE_VALUES: tuple[str, ...] = ("cancel", "abandon")

LINK_PARENT = Statement(
    "link_parent",
    lambda _d: (
        update(executions)
        .where(executions.c.execution_id == bindparam("execution_id"))
        .values(parent_execution_id=bindparam("parent"), parent_close=bindparam("parent_close"))
    ),
)
PARENT_OF = Statement(
    "parent_of",
    lambda _d: select(executions.c.parent_execution_id).where(
        executions.c.execution_id == bindparam("execution_id")
    ),
)
CHILDREN_TO_CANCEL = Statement(
    "children_to_cancel",
    lambda d: (
        select(executions.c.execution_id)
        .where(
            executions.c.parent_execution_id == bindparam("parent"),
            executions.c.parent_close == "cancel",
            one_of(executions.c.status, "active", d),
        )
        .order_by(executions.c.execution_id)
    ),
)
CHILDREN_OF = Statement(
    "children_of",
    lambda _d: (
        select(executions)
        .where(executions.c.parent_execution_id == bindparam("parent"))
        .order_by(executions.c.created_at, executions.c.execution_id)
    ),
)


def _fit(text: str, prefix: str = "") -> str:
    """``prefix + text``, or, when that is longer than the name columns' 255 characters, a
    stable shortening: the text's start and the SHA-256 of the whole."""
    whole = prefix + text
    if len(whole) <= ID:
        return whole
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{prefix}{text[: ID - len(prefix) - 66]}~{digest}"


def child_execution_id(parent_execution_id: str, position: int, run: int = 1) -> str:
    """The default id of the child a parent starts at step ``position`` of its ``run``-th run:
    the same on every replay, so a replay finds the child it started rather than starting
    another (a restart's new run starts new children)."""
    suffix = f".child-{position}" if run == 1 else f".r{run}.child-{position}"
    if len(parent_execution_id) + len(suffix) <= ID:
        return parent_execution_id + suffix
    digest = hashlib.sha256(parent_execution_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{parent_execution_id[:150]}~{digest}{suffix}"


def child_event_name(child_execution_id: str) -> str:
    """The reserved event a child's end is told to its parent as (and the name of the
    parent's wait for it)."""
    return _fit(child_execution_id, CHILD_EVENT_PREFIX)


def start_child(
    backend: Backend,
    lease: Lease,
    *,
    start_step: steps.StepOutcome,
    execution_id: str,
    task_name: str,
    payload: Any,
    deadline_at: datetime | None,
    queue: str,
    parent_close: ParentClose,
    now: datetime,
    channel: str | None,
) -> Operation[CreatedExecution]:
    """Start a child of ``lease``'s execution and record ``start_step`` (its id) as a step of
    the parent, in one transaction fenced by ``lease``: a parent that lost its lease starts no
    child, and a replay finds the step and starts nothing. An existing execution of that id
    that is not this parent's child raises :class:`ExecutionAlreadyExists`."""
    created = yield from create_execution(
        backend,
        execution_id=execution_id,
        task_name=task_name,
        payload=payload,
        now=now,
        deadline_at=deadline_at,
        channel=channel,
        queue=queue,
    )
    if created.created:
        yield (
            LINK_PARENT,
            {
                "execution_id": execution_id,
                "parent": lease.execution_id,
                "parent_close": parent_close,
            },
        )
        created = CreatedExecution(
            replace(created.execution, parent_execution_id=lease.execution_id), created=True
        )
    elif created.execution.parent_execution_id != lease.execution_id:
        raise ExecutionAlreadyExists(
            execution_id,
            created.execution.status.value,
            f"it is not a child of {lease.execution_id!r}",
        )
    yield from steps.record_step_outcome(backend, lease, start_step, now=now)
    return created


def _tell_parent(
    backend: Backend,
    parent_execution_id: str,
    parent_task: str,
    child: ExecutionRecord,
    *,
    now: datetime,
    channel: str | None,
) -> Operation[None]:
    """Store the child's end as its parent's reserved event (once: a second end of the same
    child, after an admin restart, keeps the first) and wake the parent if it waits for it.
    The caller holds the parent's lock and has checked that the parent is not finished."""
    name = child_event_name(child.execution_id)
    payload = {"status": child.status.value, "result": child.result, "error": child.error}
    params = {
        "execution_id": parent_execution_id,
        "name": name,
        "payload": payload,
        "now": now,
        "sender": child.execution_id,
    }
    if not (yield DELIVER, params):
        return
    woke = yield from wake_execution(backend, parent_execution_id, now=now, event=name)
    if woke and channel is not None:
        yield from wakeups.notify(backend, channel, parent_task)


def finish_child(
    backend: Backend,
    lease: Lease,
    *,
    execution: ExecutionRecord,
    status: Ended,
    result: Any = None,
    error: Any = None,
    now: datetime,
    channel: str | None = None,
) -> Operation[ExecutionRecord]:
    """:func:`~zart.repositories.leases.finish_execution` of a child, and its end told to its
    parent, in one transaction: both rows locked first, in one statement (the module's lock
    order)."""
    parent_id = execution.parent_execution_id
    locked = yield from lock_executions(
        backend, [execution.execution_id] if parent_id is None else [parent_id, lease.execution_id]
    )
    record = yield from finish_execution(
        backend, lease, execution=execution, status=status, result=result, error=error, now=now
    )
    parent = None if parent_id is None else locked.get(parent_id)
    if parent_id is not None and parent is not None and not parent[0].is_terminal:
        yield from _tell_parent(backend, parent_id, parent[1], record, now=now, channel=channel)
    return record


def _descendants(backend: Backend, execution_id: str) -> Operation[list[str]]:
    """The unfinished children of an execution started with ``parent_close="cancel"``, and
    theirs, parents before their children."""
    found: list[str] = []
    parents = [execution_id]
    while parents:
        children = []
        for parent in parents:
            rows_ = yield CHILDREN_TO_CANCEL, {"parent": parent, "active": ACTIVE_VALUES}
            children += [r["execution_id"] for r in rows_]
        found += children
        parents = children
    return found


def cancel_family(
    backend: Backend,
    execution_id: str,
    *,
    now: datetime,
    compensated: Collection[str] = frozenset(),
    seen_since: datetime | None = None,
    channel: str | None = None,
) -> Operation[ExecutionRecord | None]:
    """:func:`~zart.repositories.executions.cancel_execution`, plus: a child's cancel is told
    to its parent, and a parent's cancel cancels its unfinished children started with
    ``parent_close="cancel"`` (and theirs), in the same transaction. The rows are locked
    first, in one statement (the module's lock order); a child started meanwhile is found
    again under the locks (its start, which must share-lock the parent, has committed or
    waits for this cancel, and then fails its fence)."""
    found = yield PARENT_OF, {"execution_id": execution_id}
    parent_id = found[0]["parent_execution_id"] if found else None
    family = [execution_id, *(yield from _descendants(backend, execution_id))]
    locked = yield from lock_executions(backend, [*family, *([parent_id] if parent_id else [])])
    cancel: dict[str, Any] = {
        "now": now,
        "compensated": compensated,
        "seen_since": seen_since,
        "channel": channel,
    }
    record = yield from cancel_execution(backend, execution_id, **cancel)
    if record is None:
        return None
    parent = None if parent_id is None else locked.get(parent_id)
    if parent_id is not None and parent is not None and not parent[0].is_terminal:
        yield from _tell_parent(backend, parent_id, parent[1], record, now=now, channel=channel)
    for child_id in (yield from _descendants(backend, execution_id)):
        yield from cancel_execution(backend, child_id, **cancel)
    return record


@reads
def children_of(backend: Backend, parent_execution_id: str) -> Operation[list[ExecutionRecord]]:
    """The children an execution started, oldest first."""
    return [rows.execution(r) for r in (yield CHILDREN_OF, {"parent": parent_execution_id})]
