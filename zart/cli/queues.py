"""``zart queues``: list queues with their figures, set their limits, pause and resume them.

Each command makes one call on a :class:`~zart.DurableScheduler` and prints the answer: a
table for people or, with ``--json``, JSON for scripts. A bad name, limit or rate string, an
unknown queue, or an unreachable database is one ``error: ...`` line, exit code 1, and
nothing is stored.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, TypeVar

import typer

from zart.cli.common import DatabaseUrl, Schema, run_reporting_errors
from zart.database import DEFAULT_DATABASE_URL
from zart.repositories.queues import QueueRecord
from zart.scheduler import DurableScheduler
from zart.scheduler.queues import UNCHANGED

__all__ = ["app"]

T = TypeVar("T")

app = typer.Typer(
    help="List queues, set their limits, pause and resume them.", no_args_is_help=True
)

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Name = Annotated[str, typer.Argument(help="The queue's name.")]

COLUMNS = (
    "NAME",
    "CONCURRENCY",
    "PER PARTITION",
    "RATE LIMIT",
    "RATE PER PARTITION",
    "STATE",
    "QUEUED",
    "RUNNING",
)


def _call(url: str, schema: str | None, action: Callable[[DurableScheduler], Awaitable[T]]) -> T:
    async def main() -> T:
        async with DurableScheduler(url, schema=schema) as scheduler:
            return await action(scheduler)

    return run_reporting_errors(url, main)


def as_json(record: QueueRecord) -> dict[str, Any]:
    """A queue as ``--json`` prints it."""
    limits = record.limits.declaration()
    return {
        "name": record.name,
        **limits,
        "paused": record.paused,
        "queued": record.queued,
        "running": record.running,
        "recent_starts": record.recent_starts,
    }


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def _table(records: Sequence[QueueRecord]) -> str:
    rows = [COLUMNS] + [
        (
            r.name,
            _cell(r.limits.concurrency),
            _cell(r.limits.partition_concurrency),
            "-" if r.limits.rate_limit is None else f"{r.limits.rate_limit} ({r.recent_starts})",
            _cell(r.limits.partition_rate_limit),
            "paused" if r.paused else "active",
            str(r.queued),
            str(r.running),
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _show(records: Sequence[QueueRecord], json_output: bool) -> None:
    if json_output:
        typer.echo(json.dumps([as_json(r) for r in records], indent=2))
    elif records:
        typer.echo(_table(records))
    else:
        typer.echo("no queues")


def _limit(value: str | None) -> Any:
    """An option's value: not given (unchanged), ``none`` (no limit), a whole number; else
    the text itself, which the scheduler refuses with a message naming it."""
    if value is None:
        return UNCHANGED
    if value.strip().lower() == "none":
        return None
    return int(value) if value.strip().isdigit() else value


@app.command(name="list")
def list_(
    json_output: Json = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """List every queue: its limits, state, depth (queued) and running count (the RATE
    LIMIT column shows the starts in the current window in parentheses)."""
    _show(_call(database_url, schema, lambda s: s.list_queues()), json_output)


@app.command(name="set")
def set_(
    name: Name,
    concurrency: Annotated[
        str | None, typer.Option(help="At most N running at once, across workers; 'none'.")
    ] = None,
    partition_concurrency: Annotated[
        str | None, typer.Option(help="At most N running per partition key; 'none'.")
    ] = None,
    rate_limit: Annotated[
        str | None, typer.Option(help="At most N starts per period, e.g. 100/1m; 'none'.")
    ] = None,
    partition_rate_limit: Annotated[
        str | None,
        typer.Option(help="At most N starts per period per partition key, e.g. 10/1m; 'none'."),
    ] = None,
    json_output: Json = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Set NAME's limits at run time (creating it); a limit not given stays as it is. Every
    worker applies it within one poll interval; it holds until the code's declaration of
    the queue changes."""

    def action(scheduler: DurableScheduler) -> Awaitable[QueueRecord]:
        return scheduler.set_queue(
            name,
            concurrency=_limit(concurrency),
            partition_concurrency=_limit(partition_concurrency),
            rate_limit=UNCHANGED if rate_limit is None else _rate(rate_limit),
            partition_rate_limit=(
                UNCHANGED if partition_rate_limit is None else _rate(partition_rate_limit)
            ),
        )

    _show([_call(database_url, schema, action)], json_output)


def _rate(value: str) -> str | None:
    return None if value.strip().lower() == "none" else value


@app.command()
def pause(
    name: Name,
    json_output: Json = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Stop claiming NAME's executions (running ones go on) until it is resumed."""
    _show([_call(database_url, schema, lambda s: s.pause_queue(name))], json_output)


@app.command()
def resume(
    name: Name,
    json_output: Json = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Claim NAME's executions again, within its limits."""
    _show([_call(database_url, schema, lambda s: s.resume_queue(name))], json_output)
