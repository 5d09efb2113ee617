"""Text an operator reads: an execution, its run history and its step timeline.

Pure functions of the frozen records :meth:`DurableScheduler.execution_detail` returns, so that
``zart show``, ``zart wait`` and the examples (``examples/_timeline.py``) print the same thing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from zart.errors import SerializationError
from zart.models import ExecutionStatus, StepKind, StepStatus
from zart.repositories.records import (
    ExecutionDetail,
    ExecutionRecord,
    RunRecord,
    StepDetail,
)
from zart.serialization import decode

__all__ = [
    "duration",
    "error_text",
    "execution_lines",
    "json_text",
    "landed_step_line",
    "moment",
    "table",
]

STEP_ROW = "  {:<3}{:<30}{:<11}{:<10}{:<10}{}"


def execution_lines(detail: ExecutionDetail) -> Iterator[str]:
    """The execution (status, times, result or error), its runs when there are several, then
    the step timeline of the run shown, each step with its attempts."""
    record = detail.execution
    yield from summary_lines(record)
    if len(detail.runs) > 1:
        yield ""
        yield from _run_lines(detail.runs, detail.run_id)
    yield ""
    yield from _timeline_lines(detail)


def summary_lines(record: ExecutionRecord) -> Iterator[str]:
    """What ``zart status`` prints: the execution as stored, in a few lines."""
    yield f"Execution {record.execution_id!r} (task {record.task_name!r})"
    yield f"  status:  {record.status.value}, claimed by a worker {record.claim_count} time(s)"
    times = f"  created: {moment(record.created_at)}"
    if record.completed_at is not None:
        took = duration(record.created_at, record.completed_at)
        times += f"; finished {moment(record.completed_at)} (after {took})"
    yield times
    if record.run_count > 1:
        yield f"  runs:    {record.run_count} (current: {record.run_id})"
    if record.status is ExecutionStatus.COMPLETED:
        yield f"  result:  {json_text(record.result)}"
    elif record.error is not None:
        yield f"  error:   {error_text(record.error)}"


def _run_lines(runs: Sequence[RunRecord], shown: str) -> Iterator[str]:
    yield f"Runs: {len(runs)}, oldest first ('>' marks the run whose steps follow)"
    rows = [
        [
            (">" if run.run_id == shown else " ") + str(run.run_index),
            run.run_id,
            run.trigger.value + (f" by {run.triggered_by}" if run.triggered_by else ""),
            run.status.value,
            moment(run.started_at),
            duration(run.started_at, run.completed_at) if run.completed_at else "-",
        ]
        for run in runs
    ]
    yield from table(["#", "run id", "trigger", "status", "started", "took"], rows, indent=1)


def _timeline_lines(detail: ExecutionDetail) -> Iterator[str]:
    record = detail.execution
    yield (f"Step timeline: {len(detail.steps)} steps, in the order they ran ('at' counts from the")
    yield "start of the execution; 'took' spans all attempts, waits between retries included)"
    yield STEP_ROW.format("#", "step", "status", "attempts", "at", "took")
    for number, item in enumerate(detail.steps, start=1):
        step, tries = item.step, item.attempts
        began = tries[0].started_at if tries else step.created_at
        took = duration(tries[0].started_at, tries[-1].completed_at) if tries else "-"
        count = str(len(tries)) if tries else "-"
        at = "+" + duration(record.created_at, began)
        yield STEP_ROW.format(number, _step_name(item), step.status.value, count, at, took)
        for attempt in tries:
            error = "" if attempt.error is None else f"  {error_text(attempt.error)}"
            yield f"       attempt {attempt.attempt_number}: {attempt.status.value}{error}"
        if step.status is StepStatus.COMPLETED:
            label = "value" if step.kind is StepKind.CAPTURE else "result"
            yield f"       {label}: {value_text(step.result)}"
        elif step.error is not None:
            yield f"       error: {error_text(step.error)}"
        elif step.status is StepStatus.WAITING and step.wake_at is not None:
            yield f"       waiting until {moment(step.wake_at)}"


def landed_step_line(item: StepDetail, created_at: datetime) -> str:
    """One line for a step whose status just changed, as ``zart wait`` reports it."""
    step, tries = item.step, item.attempts
    at = "+" + duration(created_at, step.completed_at or step.updated_at)  # when it landed
    line = f"  {at:>9}  {_step_name(item)}: {step.status.value}"
    if len(tries) > 1:
        line += f" after {len(tries)} attempts"
    if step.status is StepStatus.FAILED and step.error is not None:
        line += f" ({error_text(step.error)})"
    elif step.status is StepStatus.WAITING and step.kind is StepKind.STEP and tries:
        line += f" to retry ({error_text(tries[-1].error)})"  # a retry back-off
    elif step.status is StepStatus.WAITING and step.wake_at is not None:
        line += f" until {moment(step.wake_at)}"
    return line


def _step_name(item: StepDetail) -> str:
    step = item.step
    return step.name if step.kind is StepKind.STEP else f"{step.name} ({step.kind.value})"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: int = 0) -> Iterator[str]:
    """Rows padded into columns as wide as their widest cell (the last column unpadded)."""
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        yield " " * indent + "  ".join([*cells, row[-1]])


def moment(when: datetime) -> str:
    """A stored time, to the second, in UTC."""
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(start: datetime, end: datetime) -> str:
    seconds = (end - start).total_seconds()
    if seconds < 10:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 600:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.0f} min" if seconds < 36000 else f"{seconds / 3600:.0f} h"


def value_text(stored: Any) -> str:
    """A stored step result as the Python value replay returns (raw JSON if it cannot be)."""
    try:
        return _short(repr(decode(stored)))
    except SerializationError:
        return json_text(stored)


def error_text(error: Any, limit: int | None = 96) -> str:
    """One line for a stored execution, step or attempt error (cut at ``limit`` characters)."""
    if not isinstance(error, dict):
        return _short(str(error), limit)
    if error.get("kind") == "retry_exhausted":
        text = f"retries exhausted after {error.get('attempts')} attempts; {error.get('message')}"
        return _short(text, limit)
    if error.get("kind") in {"timed_out", "event_timeout", "invalid_event"}:
        return _short(str(error.get("message")), limit)
    inner = error.get("error")
    cause = inner if isinstance(inner, dict) and "type" in inner else error
    name = str(cause.get("type") or "error").rpartition(":")[2]
    text = f"{name}: {cause.get('message')}"
    kind = error.get("kind")
    if kind is not None and kind != "business":  # an execution's failure says how it failed
        where = f" in {error['step']!r}" if error.get("step") else ""
        text = f"{kind}{where}: {text}"
    return _short(text, limit)


def json_text(value: Any) -> str:
    return _short(json.dumps(value, default=str))


def _short(text: str, limit: int | None = 96) -> str:
    text = " ".join(text.splitlines())
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."
