"""Messages: numbered reserved events, taken first in first out per topic.

A message to ``topic`` is stored in ``zart_events`` as the event ``zart/msg/<topic>/<n>``
(a ``/`` in the name, so no outside edge can forge one: see
:data:`zart.repositories.children.RESERVED_EVENT_PREFIX`). ``n`` is given under the
execution's row lock: one more than the topic's last message and than every ``recv`` of the
topic that timed out in the current run (whose number no message may take later: the next
``recv`` has the next number). The ``k``-th ``zart.recv(topic)`` of a run is an event wait
named ``zart/msg/<topic>/<k>``, so delivery, wake-up, suspension and replay are the events'.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select

from zart.errors import EventNotAccepted, ExecutionNotFound
from zart.models import EventRow, ExecutionRow, StepKind, StepRow, StepStatus, table_of
from zart.models.names import check_path_segment
from zart.repositories import rows, steps, wakeups
from zart.repositories.events import DELIVER
from zart.repositories.executions import (
    _escape_like,
    lock_execution,
    lock_executions,
    wake_execution,
)
from zart.repositories.executors import Backend, Operation
from zart.repositories.records import EventDelivery, Lease
from zart.repositories.statements import Statement

events = table_of(EventRow)
executions = table_of(ExecutionRow)
steps_table = table_of(StepRow)

MESSAGE_PREFIX = "zart/msg/"
#: The longest topic: its message names (prefix, topic, ``/``, number) fit the name column.
MAX_TOPIC_LENGTH = 200

LAST_MESSAGE = Statement(
    "last_message",
    lambda _d: (
        select(events.c.name)
        .where(
            events.c.execution_id == bindparam("execution_id"),
            events.c.name.like(bindparam("pattern"), escape="\\"),
        )
        .order_by(events.c.event_id.desc())
        .limit(1)
    ),
)
TIMED_OUT_RECVS = Statement(
    "timed_out_recvs",
    lambda _d: (
        select(steps_table.c.name)
        .join(executions, executions.c.current_run_id == steps_table.c.run_id)
        .where(
            executions.c.execution_id == bindparam("execution_id"),
            steps_table.c.kind == StepKind.EVENT.value,
            steps_table.c.status == StepStatus.FAILED.value,
            steps_table.c.name.like(bindparam("pattern"), escape="\\"),
        )
    ),
)


def check_topic(topic: object) -> str:
    """A topic as it enters (``send``, ``recv``, HTTP, CLI): 1 to 200 characters, no NUL or
    lone surrogate, no ``/`` (it is one path segment of the HTTP route). Raises
    :class:`~zart.InvalidName`."""
    return check_path_segment(topic, "message topic", max_length=MAX_TOPIC_LENGTH)


def message_name(topic: str, number: int) -> str:
    """The reserved event name of the ``number``-th message of ``topic`` (from 1)."""
    return f"{MESSAGE_PREFIX}{topic}/{number}"


def _number(name: str) -> int:
    return int(name.rsplit("/", 1)[1])


def deliver_message(
    backend: Backend,
    *,
    execution_id: str,
    topic: str,
    message: Any,
    now: datetime,
    sender: str | None = None,
    channel: str | None = None,
) -> Operation[EventDelivery]:
    """Store the next message of ``topic`` for an execution and wake it if its current run
    waits for that very message (and, with ``channel``, its workers at commit).

    Raises :class:`ExecutionNotFound` or :class:`EventNotAccepted` (finished or cancelled),
    having written nothing. The execution row is locked first, which numbers concurrent
    senders one after the other and orders a send against a timing-out ``recv`` and a
    suspension (as :func:`~zart.repositories.events.deliver_event`)."""
    locked = yield from lock_execution(backend, execution_id)
    if locked is None:
        raise ExecutionNotFound(execution_id)
    status, task_name = locked
    if status.is_terminal:
        raise EventNotAccepted(execution_id, status.value, "messages")
    pattern = _escape_like(f"{MESSAGE_PREFIX}{topic}/") + "%"
    params = {"execution_id": execution_id, "pattern": pattern}
    last = yield LAST_MESSAGE, params
    timed_out = yield TIMED_OUT_RECVS, params
    numbers = [_number(r["name"]) for r in (*last, *timed_out)]
    name = message_name(topic, max(numbers, default=0) + 1)
    delivered = {
        "execution_id": execution_id,
        "name": name,
        "payload": message,
        "now": now,
        "sender": sender,
    }
    found = yield DELIVER, delivered
    woke = yield from wake_execution(backend, execution_id, now=now, event=name)
    if woke and channel is not None:
        yield from wakeups.notify(backend, channel, task_name)
    return EventDelivery(rows.event(found[0]), task_name, woke)


def send_from_run(
    backend: Backend,
    lease: Lease,
    *,
    send_step: steps.StepOutcome,
    execution_id: str,
    topic: str,
    message: Any,
    now: datetime,
    channel: str | None = None,
) -> Operation[EventDelivery]:
    """``zart.send`` from a handler: the message delivered and ``send_step`` recorded as a
    step of the sender (fenced by ``lease``) in one transaction, so a replay, or a resume
    after a crash, finds the step and sends nothing again. Both execution rows are locked first,
    in one statement in ``execution_id`` order: two executions sending to each other at once
    never wait for each other in a cycle (nor with a heartbeat holding both leases)."""
    deliver = {
        "execution_id": execution_id,
        "topic": topic,
        "message": message,
        "now": now,
        "sender": lease.execution_id,
        "channel": channel,
    }
    yield from lock_executions(backend, [lease.execution_id, execution_id])
    delivery = yield from deliver_message(backend, **deliver)
    yield from steps.record_step_outcome(backend, lease, send_step, now=now)
    return delivery
