"""What a handler makes readable from outside while it runs: ``zart.publish`` (a value, last
one wins) and ``zart.write_stream`` / ``zart.close_stream`` (an offset-addressed log).

Each call is a step of the run (kind ``capture``), named after its key and its index among
this pass's calls for that key (``publish:progress#0``, ``stream:tokens#3``,
``stream:tokens#close``), and its write commits in the transaction that stores the step
(:mod:`zart.repositories.streams`). A replay finds the step and writes nothing, so an item is
never written twice nor a value published again out of order; a crash before the commit
leaves neither the write nor the step, and the replay writes it then.
"""

from __future__ import annotations

from typing import Any

from zart.errors import ConfigurationError, OutsideExecution
from zart.models import StepKind, StepStatus
from zart.models.names import check_path_segment
from zart.repositories import streams as streams_repo
from zart.runtime.run import RunState, current_run, current_step
from zart.serialization import check_size, to_json

#: A key's longest length: the step recording a write is named ``stream:<key>#<n>``, which
#: must fit the 255 characters of a step name.
MAX_KEY_LENGTH = 200


def check_key(key: object, what: str) -> str:
    """``key`` if it is a valid published-value or stream key, else
    :class:`~zart.InvalidName`: 1 to 200 characters, no NUL, no ``/`` (the HTTP API routes
    on it as one path segment)."""
    return check_path_segment(key, what, max_length=MAX_KEY_LENGTH)


async def publish(key: str, value: Any) -> None:
    """Publish ``value`` (JSON, a pydantic model or a dataclass) under ``key``, for
    ``DurableScheduler.get_published(execution_id, key)``; a later publish of the key
    replaces it. Recorded durably as a step: a replay does not publish again."""
    check_key(key, "published key")
    data = to_json(value, name=f"published value {key!r}")
    run = _run_for("zart.publish")
    check_size(data, run.runtime.max_payload_bytes, name=f"published value {key!r}")
    await _write(run, f"publish:{key}", key, data, operation="publish")


async def write_stream(key: str, value: Any) -> None:
    """Append ``value`` (JSON, a pydantic model or a dataclass) to the stream ``key`` of this
    execution, for ``DurableScheduler.read_stream``. Each item is written once, at the next
    offset, even when the run is replayed after a crash. Raises :class:`~zart.StreamClosed`
    after :func:`close_stream`."""
    check_key(key, "stream key")
    data = to_json(value, name=f"stream item of {key!r}")
    run = _run_for("zart.write_stream")
    check_size(data, run.runtime.max_payload_bytes, name=f"stream item of {key!r}")
    await _write(run, f"stream:{key}", key, data, operation="stream")


async def close_stream(key: str) -> None:
    """Close the stream ``key``: its readers end after its last item. Closing a closed stream
    raises :class:`~zart.StreamClosed`. A stream left open ends for its readers when the
    execution finishes."""
    check_key(key, "stream key")
    run = _run_for("zart.close_stream")
    await _write(run, f"stream:{key}", key, None, operation="close")


def _run_for(what: str) -> RunState:
    if current_step.get() is not None:
        raise ConfigurationError(
            f"{what} is recorded as a step of its own: call it from the durable handler, not"
            " inside a step"
        )
    run = current_run.get()
    if run is None:
        raise OutsideExecution(f"{what} was called outside a durable execution")
    return run


async def _write(run: RunState, counter: str, key: str, data: Any, *, operation: str) -> None:
    if run.suspending:
        await run.park()
    index = "close" if operation == "close" else run.next_index(counter)
    name = f"{counter}#{index}"
    position, record = run.take_name(name, StepKind.CAPTURE)
    if record is not None and record.status is StepStatus.COMPLETED:
        return  # written by an earlier pass: never twice
    execution = run.execution
    now = run.clock.now()
    outcome = run.outcome(name, StepKind.CAPTURE, StepStatus.COMPLETED, position, completed_at=now)
    channel = streams_repo.channel_for(run.runtime.channel)
    async with run.busy():  # stored before any sibling's suspension lets go of the lease
        if operation == "publish":
            stored = await run.runtime.write(
                streams_repo.publish_value,
                run.lease,
                outcome,
                key=key,
                value=data,
                now=now,
                channel=channel,
            )
        else:
            stored = await run.runtime.write(
                streams_repo.append_stream_item,
                run.lease,
                outcome,
                key=key,
                value=data,
                closing=operation == "close",
                now=now,
                channel=channel,
            )
    run.outcomes[stored.name] = stored
    run.runtime.stream_written(execution.execution_id)
