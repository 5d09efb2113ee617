"""Child executions: ``zart.run_child`` and ``zart.start_child``.

The start is a step of the parent (kind ``capture``, named ``zart/start-child/<position>``,
its value the child's id) written in the transaction that inserts the child, so a replay, or
a resume after a crash, finds it and starts nothing. The child's id is the caller's, or one
derived from the parent's id and the step's position. Waiting for the child is a wait for the
reserved event its end is told to the parent as (:mod:`zart.repositories.children`): the
parent suspends, holding no slot, and the child's finish wakes it through the ordinary event
path (wake-up, NOTIFY, claim).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar, cast, overload

from zart.errors import (
    ChildFailed,
    ConfigurationError,
    OutsideExecution,
    SerializationError,
    StoredError,
)
from zart.models import ExecutionStatus, StepKind, StepStatus
from zart.models.names import check_name, check_path_segment
from zart.repositories import children as children_repo
from zart.runtime.registry import DurableHandler, find_handler
from zart.runtime.run import RunState
from zart.runtime.waits import _run_for, await_event
from zart.serialization import check_size, decode, to_json
from zart.serialization.exceptions import decode_exception

R = TypeVar("R")

START_PREFIX = "zart/start-child/"


@dataclass
class ChildHandle(Generic[R]):
    """A child execution started by :func:`start_child`; ``await handle.result()`` waits for
    it durably (the parent suspends until the child ends)."""

    execution_id: str
    task_name: str
    _handler: DurableHandler[..., R] | None = field(default=None, repr=False)
    _value: Any = field(default=None, repr=False)
    _done: bool = field(default=False, repr=False)

    async def result(self) -> R:
        """The child's result (validated into its handler's return type where the handler is
        registered here). A failed child's error is raised as itself when its class can be
        rebuilt (like a step's business error), else as :class:`~zart.ChildFailed`, as is a
        cancelled child."""
        if self._done:
            return cast(R, self._value)
        run = _parent_run("handle.result()")
        name = children_repo.child_event_name(self.execution_id)
        ended = await await_event(run, name, None, None, _never_times_out)
        value = self._outcome(run, name, ended)
        self._value, self._done = value, True
        return cast(R, value)

    def _outcome(self, run: RunState, name: str, ended: Any) -> Any:
        status = ExecutionStatus(ended["status"])
        if status is ExecutionStatus.COMPLETED:
            if self._handler is None:
                return ended["result"]
            return self._handler.result_from_json(ended["result"])
        raise run.failed(name, ended, self._failure(status, ended.get("error")))

    def _failure(self, status: ExecutionStatus, error: Any) -> Exception:
        if status is not ExecutionStatus.FAILED:
            return ChildFailed(self.execution_id, status.value, f"it was {status.value}")
        message = error.get("message", "") if isinstance(error, dict) else str(error)
        encoded = error.get("error") if isinstance(error, dict) else None
        if encoded is None:
            return ChildFailed(self.execution_id, status.value, message)
        try:
            rebuilt = decode_exception(encoded)
        except SerializationError:
            return ChildFailed(self.execution_id, status.value, message)
        if isinstance(rebuilt, StoredError):
            return ChildFailed(self.execution_id, status.value, str(rebuilt))
        return rebuilt


def _never_times_out() -> BaseException:
    raise AssertionError("a child's wait has no timeout")  # pragma: no cover


def _parent_run(what: str) -> RunState:
    run = _run_for(f"zart.{what}")
    if run is None:
        raise OutsideExecution(f"zart.{what} was called outside a durable execution")
    return run


@overload
async def start_child(
    handler: DurableHandler[..., R],
    payload: Any = None,
    execution_id: str | None = None,
    *,
    parent_close: children_repo.ParentClose = "cancel",
) -> ChildHandle[R]: ...
@overload
async def start_child(
    handler: str,
    payload: Any = None,
    execution_id: str | None = None,
    *,
    parent_close: children_repo.ParentClose = "cancel",
) -> ChildHandle[Any]: ...
async def start_child(
    handler: DurableHandler[..., Any] | str,
    payload: Any = None,
    execution_id: str | None = None,
    *,
    parent_close: children_repo.ParentClose = "cancel",
) -> ChildHandle[Any]:
    """Start a child execution of ``handler`` (a durable handler or a task name) and return
    its handle. Recorded as a step of the calling handler: a replay returns the same child
    and starts none. ``execution_id`` defaults to one derived from the parent's id and this
    step's position. The child's deadline is its own ``timeout``, bounded by the parent's.
    Cancelling the parent cancels the child unless ``parent_close="abandon"``."""
    run = _parent_run("start_child()")
    if run.suspending:
        await run.park()
    target, task_name = _target(handler)
    if parent_close not in children_repo.PARENT_CLOSE_VALUES:
        raise ConfigurationError(f"parent_close= is 'cancel' or 'abandon', not {parent_close!r}")
    if execution_id is not None:
        check_path_segment(execution_id, "child execution id")
    stored = to_json(payload, name="payload") if target is None else target.payload_from(payload)
    check_size(stored, run.runtime.max_payload_bytes, name="payload")
    position, record = run.take_name(f"{START_PREFIX}{run.next_position}", StepKind.CAPTURE)
    if record is not None and record.status is StepStatus.COMPLETED:
        return ChildHandle(str(decode(record.result)), task_name, target)
    parent = run.execution
    child_id = execution_id or children_repo.child_execution_id(
        parent.execution_id, position, parent.run_count
    )
    now = run.clock.now()
    start_step = run.outcome(
        f"{START_PREFIX}{position}",
        StepKind.CAPTURE,
        StepStatus.COMPLETED,
        position,
        result=child_id,
        completed_at=now,
    )
    async with run.busy():
        await run.runtime.write(
            children_repo.start_child,
            run.lease,
            start_step=start_step,
            execution_id=child_id,
            task_name=task_name,
            payload=stored,
            deadline_at=_deadline(target, parent.deadline_at, now),
            queue="default" if target is None else target.queue,
            parent_close=parent_close,
            now=now,
            channel=run.runtime.channel,
        )
    return ChildHandle(child_id, task_name, target)


@overload
async def run_child(
    handler: DurableHandler[..., R],
    payload: Any = None,
    execution_id: str | None = None,
    *,
    parent_close: children_repo.ParentClose = "cancel",
) -> R: ...
@overload
async def run_child(
    handler: str,
    payload: Any = None,
    execution_id: str | None = None,
    *,
    parent_close: children_repo.ParentClose = "cancel",
) -> Any: ...
async def run_child(
    handler: DurableHandler[..., Any] | str,
    payload: Any = None,
    execution_id: str | None = None,
    *,
    parent_close: children_repo.ParentClose = "cancel",
) -> Any:
    """Start a child execution and wait durably for its result: ``start_child`` then
    ``result()``."""
    handle = await start_child(handler, payload, execution_id, parent_close=parent_close)
    return await handle.result()


def _target(handler: DurableHandler[..., Any] | str) -> tuple[DurableHandler[..., Any] | None, str]:
    if isinstance(handler, DurableHandler):
        return handler, handler.name
    if isinstance(handler, str):
        name = check_name(handler, "task name")
        return find_handler(name), name
    raise ConfigurationError(
        f"a child is a durable handler or a task name, not {type(handler).__name__}"
    )


def _deadline(
    target: DurableHandler[..., Any] | None, parent_deadline: datetime | None, now: datetime
) -> datetime | None:
    own = None if target is None or target.timeout is None else now + target.timeout
    if own is None or parent_deadline is None:
        return own or parent_deadline
    return min(own, parent_deadline)
