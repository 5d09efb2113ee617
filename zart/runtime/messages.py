"""Messages between executions: ``zart.send`` and ``zart.recv``.

``send`` is a step of the sender (kind ``capture``, named ``zart/send/<position>``) written in
the transaction that stores the message, so it is delivered exactly once however often the
sender is replayed. ``recv`` is an event wait for the topic's next message by number
(:mod:`zart.repositories.messages`): a message sent before it is kept, one not yet sent
suspends the run (no slot held) until the send wakes it, and its timeout is stored like
``wait_for_event``'s, so a replay raises :class:`~zart.RecvTimeout` again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar, overload

from zart.durations import parse_duration
from zart.errors import OutsideExecution, RecvTimeout
from zart.models import StepKind, StepStatus
from zart.models.names import check_path_segment
from zart.repositories import messages as messages_repo
from zart.runtime.waits import _run_for, await_event
from zart.serialization import check_size, to_json

T = TypeVar("T")

SEND_PREFIX = "zart/send/"


async def send(execution_id: str, topic: str, message: Any = None) -> None:
    """Send ``message`` (JSON, a pydantic model or a dataclass) to the execution
    ``execution_id`` on ``topic``, from a durable handler: recorded as a step, so it is
    delivered exactly once, even across a crash. Raises :class:`~zart.ExecutionNotFound` or
    :class:`~zart.EventNotAccepted` (the receiver finished), sending nothing. Outside a
    handler use ``DurableScheduler.send``."""
    check_path_segment(execution_id, "execution id")
    topic = messages_repo.check_topic(topic)
    run = _run_for("zart.send")
    if run is None:
        raise OutsideExecution(
            "zart.send() was called outside a durable execution; use scheduler.send()"
        )
    data = to_json(message, name="message")
    check_size(data, run.runtime.max_payload_bytes, name="message")
    if run.suspending:
        await run.park()
    position, record = run.take_name(f"{SEND_PREFIX}{run.next_position}", StepKind.CAPTURE)
    if record is not None and record.status is StepStatus.COMPLETED:
        return
    now = run.clock.now()
    send_step = run.outcome(
        f"{SEND_PREFIX}{position}",
        StepKind.CAPTURE,
        StepStatus.COMPLETED,
        position,
        result={"execution_id": execution_id, "topic": topic},
        completed_at=now,
    )
    async with run.busy():
        await run.runtime.write(
            messages_repo.send_from_run,
            run.lease,
            send_step=send_step,
            execution_id=execution_id,
            topic=topic,
            message=data,
            now=now,
            channel=run.runtime.channel,
        )


@overload
async def recv(
    topic: str, timeout: timedelta | float | str | None = None, *, model: type[T]
) -> T: ...
@overload
async def recv(
    topic: str, timeout: timedelta | float | str | None = None, *, model: None = None
) -> Any: ...
async def recv(
    topic: str, timeout: timedelta | float | str | None = None, *, model: Any = None
) -> Any:
    """Take the next message of ``topic`` sent to this execution, first in first out, waiting
    durably for it (validated into ``model`` when given). Messages sent before the call are
    kept for it. Raises :class:`~zart.RecvTimeout` when ``timeout`` passes first; that
    outcome is stored, so replays raise it again, and the next ``recv`` takes the next
    message."""
    topic = messages_repo.check_topic(topic)
    limit = None if timeout is None else parse_duration(timeout, name="recv timeout")
    run = _run_for("zart.recv")
    if run is None:
        raise OutsideExecution(f"zart.recv({topic!r}) was called outside a durable execution")
    number = run.next_index(f"recv:{topic}") + 1  # messages are numbered from 1
    seconds = None if limit is None else limit.total_seconds()
    name = messages_repo.message_name(topic, number)
    return await await_event(run, name, limit, model, lambda: RecvTimeout(topic, seconds))
