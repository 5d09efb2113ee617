"""Published values and durable streams: a handler's write and the checkpoint of the step that
records it, in one transaction; the reads of the readers outside.

Every write of a run is fenced by its lease and committed together with its step's outcome
(:func:`~zart.repositories.steps.record_step_outcome`), so a write is stored exactly when its
step is: a crash before the commit leaves neither (the replay writes it again, once), a crash
after it leaves both (the replay finds the step and writes nothing). On PostgreSQL the commit
NOTIFYs the readers (payload: the execution id) on the streams channel, which is not the
workers' channel, so a busy stream never wakes a claim loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select

from zart.errors import StreamClosed
from zart.models import (
    ExecutionRow,
    ExecutionStatus,
    PublishedRow,
    StreamItemRow,
    table_of,
)
from zart.repositories import steps, wakeups
from zart.repositories.executions import lock_execution
from zart.repositories.executors import Backend, Operation, reads
from zart.repositories.records import Lease, StepRecord
from zart.repositories.statements import Statement, upsert

published = table_of(PublishedRow)
executions = table_of(ExecutionRow)
items = table_of(StreamItemRow)

#: How many items one read of a stream returns at most.
READ_BATCH = 500


def channel_for(wakeup_channel: str) -> str:
    """The streams' NOTIFY channel beside the workers' ``wakeup_channel`` (one per schema)."""
    return "zart_streams" + wakeup_channel[len(wakeups.CHANNEL) :]


@dataclass(frozen=True, slots=True)
class PublishedValue:
    """The last value published under a key, and how many times the key was published."""

    execution_id: str
    key: str
    value: Any
    version: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StreamItem:
    """One item of a stream at its offset; ``closed``: the close marker, not an item."""

    offset: int
    value: Any
    closed: bool


def _publish(dialect: str) -> Any:
    insert = upsert(published, dialect).values(
        execution_id=bindparam("execution_id"),
        key=bindparam("key"),
        value=bindparam("value", type_=published.c.value.type),
        version=1,
        updated_at=bindparam("now", type_=published.c.updated_at.type),
    )
    return insert.on_conflict_do_update(
        index_elements=["execution_id", "key"],
        set_={
            "value": insert.excluded.value,
            "version": published.c.version + 1,
            "updated_at": insert.excluded.updated_at,
        },
    )


PUBLISH = Statement("publish_value", _publish)
GET_PUBLISHED = Statement(
    "get_published",
    lambda _d: select(published).where(
        published.c.execution_id == bindparam("execution_id"),
        published.c.key == bindparam("key"),
    ),
)
LAST_ITEM = Statement(
    "last_stream_item",
    lambda _d: (
        select(items.c.offset, items.c.closed, items.c.run_id)
        .where(items.c.execution_id == bindparam("execution_id"), items.c.key == bindparam("key"))
        .order_by(items.c.offset.desc())
        .limit(1)
    ),
)
APPEND = Statement(
    "append_stream_item",
    lambda _d: items.insert().values(
        execution_id=bindparam("execution_id"),
        key=bindparam("key"),
        offset=bindparam("offset"),
        value=bindparam("value", type_=items.c.value.type),
        closed=bindparam("closed"),
        run_id=bindparam("run_id"),
        written_at=bindparam("now", type_=items.c.written_at.type),
    ),
)
REOPEN = Statement(
    "reopen_stream",
    lambda _d: items.delete().where(
        items.c.execution_id == bindparam("execution_id"),
        items.c.key == bindparam("key"),
        items.c.offset == bindparam("offset"),
        items.c.closed.is_(True),
    ),
)
STATUS = Statement(
    "stream_execution_status",
    lambda _d: select(executions.c.status).where(
        executions.c.execution_id == bindparam("execution_id")
    ),
)
ITEMS_FROM = Statement(
    "stream_items_from",
    lambda _d: (
        select(items.c.offset, items.c.value, items.c.closed)
        .where(
            items.c.execution_id == bindparam("execution_id"),
            items.c.key == bindparam("key"),
            items.c.offset >= bindparam("offset"),
        )
        .order_by(items.c.offset)
        .limit(bindparam("limit"))
    ),
)


def publish_value(
    backend: Backend,
    lease: Lease,
    outcome: steps.StepOutcome,
    *,
    key: str,
    value: Any,
    now: datetime,
    channel: str,
) -> Operation[StepRecord]:
    """Store ``value`` as the last published under ``key`` and the step that records the
    publish, in one transaction, fenced by ``lease`` (:class:`~zart.LeaseLost`: nothing
    written); the readers are NOTIFYed at commit."""
    record = yield from steps.record_step_outcome(backend, lease, outcome, now=now)
    params = {"execution_id": lease.execution_id, "key": key, "value": value, "now": now}
    yield PUBLISH, params
    yield from wakeups.notify(backend, channel, lease.execution_id)
    return record


def append_stream_item(
    backend: Backend,
    lease: Lease,
    outcome: steps.StepOutcome,
    *,
    key: str,
    value: Any,
    closing: bool,
    now: datetime,
    channel: str,
) -> Operation[StepRecord]:
    """Append ``value`` (or, ``closing``, the close marker) to the stream ``key`` at the next
    offset, and the step that records it (its result: ``{"offset": n}``), in one
    transaction fenced by ``lease``. The execution row is locked first, so two writes of one
    execution never read the same last offset (SQLite: ``BEGIN IMMEDIATE`` is the lock).
    Raises :class:`~zart.StreamClosed` on a stream this run closed, writing nothing; one an
    earlier run closed is open again to a restart's run."""
    yield from lock_execution(backend, lease.execution_id)
    where = {"execution_id": lease.execution_id, "key": key}
    last = yield LAST_ITEM, where
    offset = int(last[0]["offset"]) + 1 if last else 0
    if last and last[0]["closed"]:
        if last[0]["run_id"] == outcome.run_id:
            raise StreamClosed(lease.execution_id, key)
        # Closed by an earlier run: a restart's write takes the marker's offset over (no
        # reader was ever sent that offset, so none skips or sees twice what comes there).
        offset -= 1
        yield REOPEN, {**where, "offset": offset}
    values = {"offset": offset, "value": value, "closed": closing, "run_id": outcome.run_id}
    yield APPEND, {**where, **values, "now": now}
    done = dataclasses.replace(outcome, result={"offset": offset})
    record = yield from steps.record_step_outcome(backend, lease, done, now=now)
    yield from wakeups.notify(backend, channel, lease.execution_id)
    return record


@reads
def get_published(
    backend: Backend, execution_id: str, key: str
) -> Operation[PublishedValue | None]:
    """The last value published under ``key``; ``None`` when none was."""
    found = yield GET_PUBLISHED, {"execution_id": execution_id, "key": key}
    if not found:
        return None
    row = found[0]
    return PublishedValue(execution_id, key, row["value"], row["version"], row["updated_at"])


@reads
def read_stream_items(
    backend: Backend, execution_id: str, key: str, *, offset: int, limit: int = READ_BATCH
) -> Operation[Sequence[StreamItem]]:
    """The stream's rows from ``offset`` on, in order, at most ``limit`` (the close marker
    included, last)."""
    params = {"execution_id": execution_id, "key": key, "offset": offset, "limit": limit}
    found = yield ITEMS_FROM, params
    return [StreamItem(int(r["offset"]), r["value"], bool(r["closed"])) for r in found]


@reads
def execution_status(backend: Backend, execution_id: str) -> Operation[ExecutionStatus | None]:
    """The execution's status alone (a reader's check whether it finished: the record's
    payload and result are not read); ``None`` when there is no such execution."""
    found = yield STATUS, {"execution_id": execution_id}
    return ExecutionStatus(found[0]["status"]) if found else None
