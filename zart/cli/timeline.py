"""Text an operator reads: an execution, its run history, its step timeline and its events.

Pure functions of the frozen records :meth:`DurableScheduler.execution_detail` returns, so that
``zart show``, ``zart status``, ``zart list``, ``zart wait`` and the examples
(``examples/_timeline.py``) print the same thing. Two rules hold everywhere:

- one rendering of a stored value: JSON, with Zart's type tags (``{"$zart": ...}``) read
  back into the plain JSON they stand for (a tuple is a list, a datetime its ISO text, a model
  its fields); never a Python ``repr``, never the raw encoding;
- an error is never cut: a long one wraps onto the next lines, indented under itself.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from zart.durations import format_duration, parse_duration
from zart.models import ExecutionStatus, StepKind, StepStatus
from zart.repositories.records import (
    EventRecord,
    ExecutionDetail,
    ExecutionRecord,
    RunRecord,
    StepDetail,
    StepRecord,
)
from zart.runtime.paths import PATCH_PREFIX
from zart.serialization import TAG

__all__ = [
    "duration",
    "error_text",
    "execution_lines",
    "landed_step_line",
    "moment",
    "summary_lines",
    "table",
    "value_text",
    "wait_text",
]

STEP_ROW = "  {:<3}{:<30}{:<11}{:<10}{:<10}{}"
#: Where the lines under a step (attempts, results, waits) begin.
DETAIL_INDENT = " " * 7
#: A stored value longer than this is shortened (``--json`` prints all of it); errors never are.
VALUE_LIMIT = 2000


def execution_lines(detail: ExecutionDetail) -> Iterator[str]:
    """The execution (status, times, what it waits for, result or error), its runs when there
    are several, the step timeline of the run shown, then the events it received."""
    record = detail.execution
    current = detail.run_id == record.run_id
    waits = [item.step for item in detail.steps if item.step.status is StepStatus.WAITING]
    held = None if detail.divergence is None else detail.divergence.reason
    yield from summary_lines(record, waits if current else (), held=held)
    patches = [
        item.step.name[len(PATCH_PREFIX) :]
        for item in detail.steps
        if item.step.name.startswith(PATCH_PREFIX)
    ]
    if patches:
        yield from wrapped("  patches: ", ", ".join(patches))
    if len(detail.runs) > 1:
        yield ""
        yield from _run_lines(detail.runs, detail.run_id)
    yield ""
    yield from _timeline_lines(detail)
    if detail.events:
        yield ""
        yield from _event_lines(record, detail.events)
    if detail.children:
        yield ""
        yield f"Children: {len(detail.children)}, in the order they were started"
        for child in detail.children:
            yield f"  {child.execution_id}  {child.task_name}  {child.status.value}"


def _held_lines(held: str | None) -> Iterator[str]:
    if held is not None:
        yield from wrapped(
            "  held:    ",
            f"replay diverged (zart resume-diverged / zart fail-diverged): {held}",
        )


def summary_lines(
    record: ExecutionRecord, waits: Sequence[StepRecord] = (), *, held: str | None = None
) -> Iterator[str]:
    """What ``zart status`` prints: the execution as stored, in a few lines; with ``waits``
    (its waiting steps), what a waiting execution waits for; with ``held``, the verdict of
    the replay divergence that holds it."""
    yield f"Execution {record.execution_id!r} (task {record.task_name!r})"
    yield f"  status:  {record.status.value}, claimed by a worker {record.claim_count} time(s)"
    if record.crashed_claims:
        yield (
            f"  crashes: {record.crashed_claims} claim(s) in a row ended without the worker"
            " reporting back (it died or lost its lease)"
        )
    times = f"  created: {moment(record.created_at)}"
    if record.completed_at is not None:
        took = duration(record.created_at, record.completed_at)
        times += f"; finished {moment(record.completed_at)} (after {took})"
    yield times
    if record.run_count > 1:
        yield f"  runs:    {record.run_count} (current: {record.run_id})"
    if record.tags:
        tags = ", ".join(f"{key}={value}" for key, value in record.tags.items())
        yield from wrapped("  tags:    ", tags)
    yield from _link_lines(record)
    yield from _held_lines(held)
    if record.status is ExecutionStatus.WAITING:
        for step in waits or ():
            yield from wrapped("  waits:   ", wait_text(step))
        if not waits:
            yield "  waits:   for a wake-up (no wait recorded in its current run)"
    if record.status is ExecutionStatus.COMPLETED:
        yield from wrapped("  result:  ", value_text(record.result))
    elif record.error is not None:
        yield from wrapped("  error:   ", error_text(record.error))


def _link_lines(record: ExecutionRecord) -> Iterator[str]:
    """The executions this one is linked to: its compensation, what it undoes, its parent."""
    if record.compensation_id is not None:
        yield f"  undone:  by its on_cancel, execution {record.compensation_id!r}"
    if record.compensates is not None:
        yield f"  undoes:  the cancelled execution {record.compensates!r}"
    if record.parent_execution_id is not None:
        yield f"  parent:  execution {record.parent_execution_id!r} started it as a child"


def wait_text(step: StepRecord) -> str:
    """What a waiting step waits for, with its deadline: an event, the end of a sleep, or the
    next try of a step backing off."""
    if step.kind is StepKind.EVENT:
        until = "no deadline" if step.wake_at is None else f"deadline {moment(step.wake_at)}"
        return f"event {step.name!r} ({until})"
    if step.wake_at is None:
        return f"{step.kind.value} {step.name!r}"
    if step.kind is StepKind.SLEEP:
        return f"sleep {step.name!r} until {moment(step.wake_at)}"
    return f"the retry of step {step.name!r} at {moment(step.wake_at)}"


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
    yield f"Step timeline: {len(detail.steps)} steps, in the order they ran ('at' counts from"
    yield "the start of the execution; 'took' spans all attempts, waits between retries"
    yield "included)"
    yield STEP_ROW.format("#", "step", "status", "attempts", "at", "took")
    events = {event.name: event for event in detail.events}
    for number, item in enumerate(detail.steps, start=1):
        step, tries = item.step, item.attempts
        began = tries[0].started_at if tries else step.created_at
        took = duration(tries[0].started_at, tries[-1].completed_at) if tries else "-"
        count = str(len(tries)) if tries else "-"
        at = "+" + duration(record.created_at, began)
        status = _step_status(step, record)
        yield STEP_ROW.format(number, _step_name(item), status, count, at, took)
        for attempt in tries:
            head = f"{DETAIL_INDENT}attempt {attempt.attempt_number}: {attempt.status.value}"
            if attempt.error is None:
                yield head
            else:
                yield from wrapped(head + "  ", error_text(attempt.error))
        yield from _step_outcome_lines(step, record, events.get(step.name))


def _step_status(step: StepRecord, record: ExecutionRecord) -> str:
    """A wait of a finished execution is over, whatever its row says: it shows how the
    execution ended (``cancelled``) rather than ``waiting``."""
    if step.status is StepStatus.WAITING and record.is_terminal:
        return record.status.value
    return step.status.value


def _step_outcome_lines(
    step: StepRecord, record: ExecutionRecord, event: EventRecord | None
) -> Iterator[str]:
    if step.kind is StepKind.EVENT and event is not None and step.status is StepStatus.COMPLETED:
        yield DETAIL_INDENT + _arrival(record, event)
    if step.status is StepStatus.COMPLETED:
        label = {StepKind.CAPTURE: "value", StepKind.EVENT: "payload"}.get(step.kind, "result")
        if step.kind is not StepKind.SLEEP:
            yield from wrapped(f"{DETAIL_INDENT}{label}: ", value_text(step.result))
    elif step.error is not None:
        yield from wrapped(f"{DETAIL_INDENT}error: ", error_text(step.error))
    elif step.status is StepStatus.WAITING and record.is_terminal:
        when = record.completed_at or record.updated_at
        yield f"{DETAIL_INDENT}no longer awaited: the execution was {record.status.value}" + (
            f" at {moment(when)}"
        )
    elif step.status is StepStatus.WAITING:
        yield from wrapped(f"{DETAIL_INDENT}waiting for ", wait_text(step))


def _event_lines(record: ExecutionRecord, events: Sequence[EventRecord]) -> Iterator[str]:
    yield f"Events: {len(events)}, in the order they arrived"
    for event in events:
        state = "consumed" if event.consumed_at is not None else "not consumed yet"
        yield f"  {event.name!r}: {_arrival(record, event)}; {state}"
        yield from wrapped(f"{DETAIL_INDENT}payload: ", value_text(event.payload))


def _arrival(record: ExecutionRecord, event: EventRecord) -> str:
    sender = f" from {event.sender}" if event.sender else ""
    at = duration(record.created_at, event.received_at)
    return f"arrived +{at} ({moment(event.received_at)}){sender}"


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
    elif step.status is StepStatus.WAITING:
        line += f" for {wait_text(step)}"
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


def wrapped(head: str, text: str, width: int | None = None) -> Iterator[str]:
    """``head`` then ``text``, wrapped at the terminal's width (100 columns off a terminal)
    with the following lines indented under the text's start: nothing is cut."""
    columns = width or max(shutil.get_terminal_size((100, 24)).columns, 60)
    lines = textwrap.wrap(
        " ".join(text.split()),
        width=columns,
        initial_indent=head,
        subsequent_indent=" " * len(head),
        break_on_hyphens=False,
    )
    yield from lines or [head.rstrip()]


def value_text(stored: Any, limit: int | None = VALUE_LIMIT) -> str:
    """A stored value (payload, result, step result, event payload) as JSON, type tags read
    back into plain JSON; shortened past ``limit`` characters, saying by how much."""
    text = json.dumps(plain(stored), ensure_ascii=False, default=str)
    if limit is None or len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters; --json prints all)"


def plain(stored: Any) -> Any:
    """Stored JSON with Zart's type tags (:mod:`zart.serialization`) replaced by the plain
    JSON they stand for: tuples and sets as lists, datetimes and UUIDs as their text, models,
    dataclasses and enums as their values, timedeltas as durations (``"90s"``)."""
    if isinstance(stored, list):
        return [plain(item) for item in stored]
    if not isinstance(stored, dict):
        return stored
    if TAG not in stored:
        return {key: plain(value) for key, value in stored.items()}
    kind, value = stored[TAG], stored.get("v")
    if kind == "dict":
        return {_key(plain(k)): plain(v) for k, v in value or []}
    if kind == "float":
        return float(str(value))
    if kind == "timedelta" and isinstance(value, list) and len(value) == 3:
        days, seconds, micros = value
        return format_duration(parse_duration(days * 86400 + seconds + micros / 1e6))
    if kind == "dataclass":
        return {**plain(value), **plain(stored.get("attrs") or {})}
    return plain(value)


def _key(key: Any) -> str:
    return key if isinstance(key, str) else json.dumps(key, default=str)


def error_text(error: Any) -> str:
    """A stored execution, step or attempt error in one line of text, all of it."""
    if not isinstance(error, dict):
        return str(error)
    if error.get("kind") == "retry_exhausted":
        return f"retries exhausted after {error.get('attempts')} attempts; {error.get('message')}"
    if error.get("kind") in {"timed_out", "event_timeout", "invalid_event", "crashed"}:
        return str(error.get("message"))
    if error.get("kind") == "crash_loop":  # an execution's or a step's: no exception behind it
        return f"crash_loop: {error.get('message')}"
    if error.get("kind") in {"timed_out", "event_timeout", "invalid_event"}:
        return str(error.get("message"))
    inner = error.get("error")
    cause = inner if isinstance(inner, dict) and "type" in inner else error
    name = str(cause.get("type") or "error").rpartition(":")[2]
    text = f"{name}: {cause.get('message')}"
    kind = error.get("kind")
    if kind is not None and kind != "business":  # an execution's failure says how it failed
        where = f" in {error['step']!r}" if error.get("step") else ""
        text = f"{kind}{where}: {text}"
    return text
