"""Print an execution and its step timeline, read back from Zart's tables.

Shared by ``demo.py`` and ``crash_recovery.py``; not an example on its own.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import zart
from zart.models import StepKind, StepStatus
from zart.repositories import steps as steps_repo
from zart.serialization import decode

ROW = "  {:<3}{:<30}{:<11}{:<10}{:<10}{}"


async def print_execution(scheduler: zart.DurableScheduler, execution_id: str) -> None:
    """The execution's status and result (or error), then its steps in the order they ran,
    each with its attempts."""
    record = await scheduler.status(execution_id)
    print(f"Execution {record.execution_id!r} (task {record.task_name!r})")
    print(f"  status:  {record.status.value}, claimed by a worker {record.claim_count} time(s)")
    if record.status is zart.ExecutionStatus.COMPLETED:
        print(f"  result:  {_json(record.result)}")
    elif record.error is not None:
        print(f"  error:   {record.error['kind']}: {record.error['message']}")
    async with scheduler.engine.connect() as conn:
        steps = await steps_repo.list_steps(conn, record.run_id)
        attempts = await steps_repo.list_step_attempts(conn, [s.step_id for s in steps])
    print(f"\nStep timeline: {len(steps)} steps, in the order they ran ('at' counts from the")
    print("start of the execution; 'took' spans all attempts, waits between retries included)")
    print(ROW.format("#", "step", "status", "attempts", "at", "took"))
    for number, step in enumerate(steps, start=1):
        tries = attempts[step.step_id]
        name = step.name if step.kind is StepKind.STEP else f"{step.name} ({step.kind.value})"
        began = tries[0].started_at if tries else step.created_at
        took = _ms(tries[0].started_at, tries[-1].completed_at) if tries else "-"
        count = str(len(tries)) if tries else "-"
        at = "+" + _ms(record.created_at, began)
        print(ROW.format(number, name, step.status.value, count, at, took))
        for attempt in tries:
            error = "" if attempt.error is None else f"  {_error(attempt.error)}"
            print(f"       attempt {attempt.attempt_number}: {attempt.status.value}{error}")
        if step.status is StepStatus.COMPLETED:
            print(
                f"       {'value' if step.kind is StepKind.CAPTURE else 'result'}: "
                f"{_value(step.result)}"
            )
        elif step.error is not None:
            print(f"       error: {_error(step.error)}")


def _ms(start: datetime, end: datetime) -> str:
    seconds = (end - start).total_seconds()
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _value(stored: Any) -> str:
    """A stored step result as the Python value replay returns (raw JSON if it cannot be)."""
    try:
        return _short(repr(decode(stored)))
    except zart.SerializationError:
        return _json(stored)


def _error(error: dict[str, Any]) -> str:
    """One line for a stored step error or attempt error."""
    if error.get("kind") == "retry_exhausted":
        return f"retries exhausted after {error['attempts']} attempts; {error['message']}"
    if error.get("kind") == "timed_out":
        return str(error["message"])
    if error.get("kind") == "business":
        error = error["error"]
    name = str(error.get("type", "error")).rpartition(":")[2]
    return _short(f"{name}: {error.get('message')}")


def _json(value: Any) -> str:
    return _short(json.dumps(value, default=str))


def _short(text: str, limit: int = 96) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
