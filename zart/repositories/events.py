"""Events: store a delivery (waking the execution in the same transaction) and consume it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from zart.errors import EventAlreadyDelivered, EventNotAccepted, ExecutionNotFound
from zart.models import EventRow, table_of
from zart.repositories.dialect import insert_ignoring_conflicts
from zart.repositories.executions import lock_execution, wake_execution
from zart.repositories.records import EventDelivery, EventRecord

events = table_of(EventRow)


def _record(row: Row[Any]) -> EventRecord:
    m = row._mapping
    return EventRecord(
        event_id=m["event_id"],
        execution_id=m["execution_id"],
        name=m["name"],
        payload=m["payload"],
        received_at=m["received_at"],
        consumed_at=m["consumed_at"],
        sender=m["sender"],
    )


async def deliver_event(
    conn: AsyncConnection,
    *,
    execution_id: str,
    name: str,
    payload: Any,
    now: datetime,
    sender: str | None = None,
) -> EventDelivery:
    """Store an event for an execution; wake the execution if its current run waits for it.

    Raises :class:`ExecutionNotFound`, :class:`EventNotAccepted` (finished or cancelled) or
    :class:`EventAlreadyDelivered`, having written nothing. The execution row is locked first
    (:func:`~zart.repositories.executions.lock_execution`), which orders this delivery against a
    concurrent suspension so the wake-up is never lost.
    """
    locked = await lock_execution(conn, execution_id)
    if locked is None:
        raise ExecutionNotFound(execution_id)
    status, task_name = locked
    if status.is_terminal:
        raise EventNotAccepted(execution_id, status.value)
    row = (
        await conn.execute(
            insert_ignoring_conflicts(conn, events, ["execution_id", "name"])
            .values(
                execution_id=execution_id,
                name=name,
                payload=payload,
                received_at=now,
                sender=sender,
            )
            .returning(*events.c)
        )
    ).first()
    if row is None:
        raise EventAlreadyDelivered(execution_id, name)
    woke = await wake_execution(conn, execution_id, now=now, event=name)
    return EventDelivery(_record(row), task_name, woke)


async def get_event(conn: AsyncConnection, execution_id: str, name: str) -> EventRecord | None:
    row = (
        await conn.execute(
            select(events).where(events.c.execution_id == execution_id, events.c.name == name)
        )
    ).first()
    return None if row is None else _record(row)


async def list_events(conn: AsyncConnection, execution_id: str) -> list[EventRecord]:
    """Every event delivered to the execution, in the order they arrived."""
    rows = await conn.execute(
        select(events)
        .where(events.c.execution_id == execution_id)
        .order_by(events.c.received_at, events.c.event_id)
    )
    return [_record(row) for row in rows]


async def consume_event(
    conn: AsyncConnection, execution_id: str, name: str, *, now: datetime
) -> EventRecord | None:
    """Mark a delivered event as consumed by a wait; ``None`` when it has not arrived (or was
    consumed already)."""
    row = (
        await conn.execute(
            update(events)
            .where(
                events.c.execution_id == execution_id,
                events.c.name == name,
                events.c.consumed_at.is_(None),
            )
            .values(consumed_at=now)
            .returning(*events.c)
        )
    ).first()
    return None if row is None else _record(row)
