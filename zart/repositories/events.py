"""Events: store a delivery (waking the execution in the same transaction) and consume it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update

from zart.errors import (
    EventAlreadyDelivered,
    EventDoesNotFit,
    EventNotAccepted,
    ExecutionNotFound,
)
from zart.models import EventRow, ExecutionRow, StepKind, StepRow, StepStatus, table_of
from zart.repositories import rows, steps, timers, wakeups
from zart.repositories.executions import lock_execution, wake_execution
from zart.repositories.executors import Backend, Operation, reads
from zart.repositories.records import EventDelivery, EventRecord, Lease
from zart.repositories.statements import Statement, upsert
from zart.serialization.schemas import schema_problems

events = table_of(EventRow)
executions = table_of(ExecutionRow)
steps_table = table_of(StepRow)

DELIVER = Statement(
    "deliver_event",
    lambda d: (
        upsert(events, d)
        .values(
            execution_id=bindparam("execution_id"),
            name=bindparam("name"),
            payload=bindparam("payload", type_=events.c.payload.type),
            received_at=bindparam("now", type_=events.c.received_at.type),
            sender=bindparam("sender", type_=events.c.sender.type),
        )
        .on_conflict_do_nothing(index_elements=["execution_id", "name"])
        .returning(*events.c)
    ),
)
GET = Statement(
    "get_event",
    lambda _d: select(events).where(
        events.c.execution_id == bindparam("execution_id"), events.c.name == bindparam("name")
    ),
)
EVENTS_OF = Statement(
    "events_of",
    lambda _d: (
        select(events)
        .where(events.c.execution_id == bindparam("execution_id"))
        .order_by(events.c.received_at, events.c.event_id)
    ),
)
WAIT_SCHEMA = Statement(
    "event_wait_schema",
    lambda _d: (
        select(steps_table.c.event_schema)
        .join(executions, executions.c.current_run_id == steps_table.c.run_id)
        .where(
            executions.c.execution_id == bindparam("execution_id"),
            steps_table.c.name == bindparam("name"),
            steps_table.c.kind == StepKind.EVENT.value,
            steps_table.c.status == StepStatus.WAITING.value,
            steps_table.c.event_schema.is_not(None),
        )
    ),
)
FORGET = Statement(
    "forget_event",
    lambda _d: events.delete().where(
        events.c.execution_id == bindparam("execution_id"), events.c.name == bindparam("name")
    ),
)
CONSUME = Statement(
    "consume_event",
    lambda _d: (
        update(events)
        .where(
            events.c.execution_id == bindparam("execution_id"),
            events.c.name == bindparam("name"),
            events.c.consumed_at.is_(None),
        )
        .values(consumed_at=bindparam("now", type_=events.c.consumed_at.type))
        .returning(*events.c)
    ),
)


def deliver_event(
    backend: Backend,
    *,
    execution_id: str,
    name: str,
    payload: Any,
    now: datetime,
    sender: str | None = None,
    channel: str | None = None,
) -> Operation[EventDelivery]:
    """Store an event for an execution; wake the execution if its current run waits for it
    (and, with ``channel``, its workers at commit).

    Raises :class:`ExecutionNotFound`, :class:`EventNotAccepted` (finished or cancelled),
    :class:`EventDoesNotFit` (the current run waits for it with a model whose JSON schema the
    payload does not fit) or :class:`EventAlreadyDelivered`, having written nothing. The
    execution row is locked first (:func:`~zart.repositories.executions.lock_execution`),
    which orders this delivery against a concurrent suspension so the wake-up is never lost.
    """
    locked = yield from lock_execution(backend, execution_id)
    if locked is None:
        raise ExecutionNotFound(execution_id)
    status, task_name = locked
    if status.is_terminal:
        raise EventNotAccepted(execution_id, status.value)
    # Read under the execution's lock: the wait cannot complete or be replaced meanwhile.
    for wait in (yield WAIT_SCHEMA, {"execution_id": execution_id, "name": name}):
        problems = schema_problems(wait["event_schema"], payload)
        if problems:
            raise EventDoesNotFit(execution_id, name, problems)
    params = {
        "execution_id": execution_id,
        "name": name,
        "payload": payload,
        "now": now,
        "sender": sender,
    }
    found = yield DELIVER, params
    if not found:
        raise EventAlreadyDelivered(execution_id, name)
    woke = yield from wake_execution(backend, execution_id, now=now, event=name)
    if woke and channel is not None:
        yield from wakeups.notify(backend, channel, task_name)
    return EventDelivery(rows.event(found[0]), task_name, woke)


@reads
def get_event(backend: Backend, execution_id: str, name: str) -> Operation[EventRecord | None]:
    found = yield GET, {"execution_id": execution_id, "name": name}
    return rows.event(found[0]) if found else None


@reads
def list_events(backend: Backend, execution_id: str) -> Operation[list[EventRecord]]:
    """Every event delivered to the execution, in the order they arrived."""
    return [rows.event(r) for r in (yield EVENTS_OF, {"execution_id": execution_id})]


def forget_event(backend: Backend, execution_id: str, name: str) -> Operation[None]:
    """Remove the event ``name`` of an execution, so that a new one can be delivered: a
    retried event wait takes the next event of its name, not the one it refused."""
    yield FORGET, {"execution_id": execution_id, "name": name}


def consume_event(
    backend: Backend, execution_id: str, name: str, *, now: datetime
) -> Operation[EventRecord | None]:
    """Mark a delivered event as consumed by a wait; ``None`` when it has not arrived (or was
    consumed already)."""
    found = yield CONSUME, {"execution_id": execution_id, "name": name, "now": now}
    return rows.event(found[0]) if found else None


def take_event(
    backend: Backend,
    lease: Lease,
    *,
    run_id: str,
    name: str,
    position: int,
    deadline: bool,
    now: datetime,
    refusal: Callable[[Any], Any] | None = None,
    event_schema: Any = None,
    expired: Any = None,
    wake_at: datetime | None = None,
) -> Operation[EventRecord | None]:
    """A wait for the event ``name`` takes it, in one transaction: the event consumed, the
    wait's step stored ``completed`` with its payload (fenced by ``lease``) and, when the wait
    has a ``deadline``, its timer called off. ``None`` when the event has not arrived.

    ``refusal(payload)`` is the stored error of a payload the wait's model refuses (``None``:
    it fits); such a wait is stored ``failed``, keeping ``event_schema``, so that retry-step
    can re-open it for a new event.

    ``expired``: the wait's deadline has passed, and this is the error to store it ``failed``
    with when the event has not arrived, in the same transaction and under the execution's
    row lock (taken first): a delivery racing it either commits first, and is taken, or
    after, and sees the wait failed (what numbers messages, :mod:`.messages`); ``wake_at``
    is its deadline, stored with it."""
    if expired is not None:
        yield from lock_execution(backend, lease.execution_id)
    event = yield from consume_event(backend, lease.execution_id, name, now=now)
    if event is None:
        if expired is not None:
            timed_out = steps.StepOutcome(
                run_id=run_id,
                name=name,
                kind=StepKind.EVENT,
                status=StepStatus.FAILED,
                position=position,
                attempts=0,
                error=expired,
                wake_at=wake_at,
                completed_at=now,
            )
            yield from steps.record_step_outcome(backend, lease, timed_out, now=now)
        return None
    error = None if refusal is None else refusal(event.payload)
    done = steps.StepOutcome(
        run_id=run_id,
        name=name,
        kind=StepKind.EVENT,
        status=StepStatus.COMPLETED if error is None else StepStatus.FAILED,
        position=position,
        attempts=1,
        result=event.payload,
        error=error,
        completed_at=now,
        event_schema=event_schema,
    )
    yield from steps.record_step_outcome(backend, lease, done, now=now)
    if deadline:
        yield from timers.cancel_timer(backend, run_id, name, now=now)
    return event
