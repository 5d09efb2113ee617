"""What the running code can ask about itself: ``zart.context()``.

Two context variables carry the state (:mod:`zart.runtime.run`): the run being executed (set
by the worker around the handler) and the step attempt being executed (set around a step
body).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from zart.errors import OutsideExecution
from zart.runtime.run import StepScope, current_run, current_step

__all__ = ["ExecutionInfo", "StepScope", "context", "current_run", "current_step"]


@dataclass(frozen=True, slots=True)
class ExecutionInfo:
    """Read-only facts about the current execution (and step attempt, inside a step)."""

    execution_id: str
    task_name: str
    run_id: str
    data: Any
    current_attempt: int
    max_retries: int | None
    step_name: str | None
    #: The fire time (aware UTC) of the schedule firing that started this execution; ``None``
    #: when it was not started by a schedule.
    fire_time: datetime | None = None
    #: The cancelled execution this one undoes, when it is a compensation (``on_cancel``).
    compensates: str | None = None
    #: The tags it was started with (``start(..., tags=...)``); empty when none.
    tags: Mapping[str, str] = field(default_factory=dict)

    def is_retry(self) -> bool:
        """Whether this is a retry of the current step (``current_attempt > 0``)."""
        return self.current_attempt > 0


def context() -> ExecutionInfo:
    """Facts about the running execution; callable from the handler and from step bodies.

    ``data`` is the execution's input payload as stored (JSON): treat it as read-only.
    Raises :class:`~zart.errors.OutsideExecution` when no durable execution is running.
    """
    run = current_run.get()
    if run is None:
        raise OutsideExecution("zart.context() was called outside a durable execution")
    step = current_step.get()
    execution = run.execution
    return ExecutionInfo(
        execution_id=execution.execution_id,
        task_name=execution.task_name,
        run_id=execution.run_id,
        data=execution.payload,
        current_attempt=0 if step is None else step.attempt,
        max_retries=None if step is None else step.max_retries,
        step_name=None if step is None else step.name,
        fire_time=execution.fire_time,
        compensates=execution.compensates,
        tags=MappingProxyType(execution.tags),
    )
