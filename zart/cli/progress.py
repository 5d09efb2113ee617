"""``zart wait``'s progress: poll an execution's detail and report its steps as they land.

On a terminal a spinner line shows the current status below the step lines; elsewhere (a pipe,
a log file, CI) each change is one plain line and nothing else is written.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Protocol

import typer
from rich.console import Console
from rich.status import Status

from zart.cli.timeline import duration, landed_step_line
from zart.errors import WaitTimedOut
from zart.models import ExecutionStatus, StepStatus
from zart.repositories.records import ExecutionRecord
from zart.scheduler import DurableScheduler

__all__ = ["Reporter", "follow", "reporter"]

#: Seconds between two reads of the execution: short at first, backing off to the longest.
FIRST_POLL = 0.05
LONGEST_POLL = 0.5


class Reporter(Protocol):
    def line(self, text: str) -> None:
        """A change worth keeping on screen (a step landed, the status moved)."""

    def status(self, text: str) -> None:
        """The state right now, replaced by the next one (terminals only)."""


class _PlainReporter:
    def line(self, text: str) -> None:
        typer.echo(text)

    def status(self, text: str) -> None:
        pass


class _LiveReporter:
    def __init__(self, console: Console, spinner: Status) -> None:
        self._console = console
        self._spinner = spinner

    def line(self, text: str) -> None:
        self._console.print(text, markup=False, highlight=False, soft_wrap=True)

    def status(self, text: str) -> None:
        self._spinner.update(text)


@contextmanager
def reporter() -> Iterator[Reporter]:
    """A live display on a terminal, plain lines elsewhere."""
    if not sys.stdout.isatty():
        yield _PlainReporter()
        return
    console = Console(highlight=False)
    with console.status("waiting for the execution") as spinner:
        yield _LiveReporter(console, spinner)


async def follow(
    scheduler: DurableScheduler,
    execution_id: str,
    within: float | None,
    report: Reporter,
) -> ExecutionRecord:
    """Read the execution until it is completed, failed or cancelled and return its record,
    reporting each step that lands and each change of status on the way.

    Raises :class:`~zart.WaitTimedOut` after ``within`` seconds (the execution keeps running).
    """
    give_up = None if within is None else time.monotonic() + within
    reported: dict[int, StepStatus] = {}
    status: ExecutionStatus | None = None
    delay = FIRST_POLL
    while True:
        detail = await scheduler.execution_detail(execution_id)
        record = detail.execution
        news: list[tuple[datetime, str]] = []  # what changed since the last read, by time
        if record.status is not status:
            status = record.status
            at = "+" + duration(record.created_at, record.updated_at)
            news.append((record.updated_at, f"  {at:>9}  execution {status.value}"))
        for item in detail.steps:
            step = item.step
            if step.status is not StepStatus.RUNNING and reported.get(step.step_id) != step.status:
                reported[step.step_id] = step.status
                when = step.completed_at or step.updated_at
                news.append((when, landed_step_line(item, record.created_at)))
        for _, line in sorted(news, key=lambda new: new[0]):
            report.line(line)
        if record.is_terminal:
            return record
        left = None if give_up is None else give_up - time.monotonic()
        if left is not None and left <= 0:
            raise WaitTimedOut(execution_id, within or 0.0)
        finished = sum(1 for item in detail.steps if item.step.status is StepStatus.COMPLETED)
        report.status(
            f"{execution_id}: {status.value}, {finished} of {len(detail.steps)} steps completed"
        )
        await asyncio.sleep(delay if left is None else min(delay, left))
        delay = min(delay * 2, LONGEST_POLL)
