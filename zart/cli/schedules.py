"""``zart schedules``: list, pause, resume, add and remove cron schedules.

Each command makes one call on a :class:`~zart.DurableScheduler` and prints the answer: a
table for people or, with ``--json``, JSON for scripts. An unknown schedule, a bad cron
expression or time zone, or an unreachable database is one ``error: ...`` line, exit code 1.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer

from zart.cli.common import DatabaseUrl, Schema, fail, run_reporting_errors
from zart.cli.worker import import_modules
from zart.database import DEFAULT_DATABASE_URL
from zart.repositories.records import ScheduleRecord
from zart.scheduler import DurableScheduler

__all__ = ["app"]

T = TypeVar("T")

app = typer.Typer(help="List, pause, resume, add and remove cron schedules.", no_args_is_help=True)

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Name = Annotated[str, typer.Argument(help="The schedule's name (a declared one: its task name).")]

COLUMNS = ("NAME", "TASK", "CRON", "TIMEZONE", "STATE", "NEXT FIRE (UTC)", "LAST FIRE (UTC)")


def _call(url: str, schema: str | None, action: Callable[[DurableScheduler], Awaitable[T]]) -> T:
    async def main() -> T:
        async with DurableScheduler(url, schema=schema) as scheduler:
            return await action(scheduler)

    return run_reporting_errors(url, main)


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _next_fire(record: ScheduleRecord) -> datetime | None:
    """When it fires next: never while paused (the stored time, from before the pause, may
    well be past; resuming computes a new one)."""
    return None if record.paused else record.next_fire_at


def _as_json(record: ScheduleRecord) -> dict[str, Any]:
    next_fire = _next_fire(record)
    return {
        "name": record.name,
        "task_name": record.task_name,
        "cron": record.cron,
        "timezone": record.timezone,
        "payload": record.payload,
        "overlap": record.overlap.value,
        "catchup": record.catchup.value,
        "paused": record.paused,
        "next_fire_at": None if next_fire is None else next_fire.isoformat(),
        "last_fire_at": None if record.last_fire_at is None else record.last_fire_at.isoformat(),
    }


def _table(records: Sequence[ScheduleRecord]) -> str:
    rows = [COLUMNS] + [
        (
            r.name,
            r.task_name,
            r.cron,
            r.timezone,
            "paused" if r.paused else "active",
            _when(_next_fire(r)),
            _when(r.last_fire_at),
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _show(records: Sequence[ScheduleRecord], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps([_as_json(r) for r in records], indent=2))
    elif records:
        typer.echo(_table(records))
    else:
        typer.echo("no schedules")


def _show_one(record: ScheduleRecord, as_json: bool) -> None:
    """A command about one schedule prints that schedule: one JSON object, or a table row."""
    if as_json:
        typer.echo(json.dumps(_as_json(record), indent=2))
    else:
        typer.echo(_table([record]))


@app.command(name="list")
def list_(
    as_json: Json = False, database_url: DatabaseUrl = DEFAULT_DATABASE_URL, schema: Schema = None
) -> None:
    """List every schedule: declared on handlers or added at run time."""
    _show(_call(database_url, schema, lambda s: s.list_schedules()), as_json)


@app.command()
def pause(
    name: Name,
    as_json: Json = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Stop firing NAME until it is resumed (running executions go on)."""
    _show_one(_call(database_url, schema, lambda s: s.pause_schedule(name)), as_json)


@app.command()
def resume(
    name: Name,
    as_json: Json = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Fire NAME again, from its next fire time (paused times are not caught up)."""
    _show_one(_call(database_url, schema, lambda s: s.resume_schedule(name)), as_json)


@app.command()
def add(
    name: Name,
    task: Annotated[str, typer.Argument(help="The durable handler's task name.")],
    cron: Annotated[str, typer.Argument(help='5 fields ("0 9 * * *") or 6 with seconds first.')],
    timezone: Annotated[str, typer.Option(help="IANA time zone of the expression.")] = "UTC",
    payload: Annotated[str, typer.Option(help="JSON input of every execution.")] = "null",
    overlap: Annotated[
        str, typer.Option(help="skip | allow | cancel_previous (previous one still runs).")
    ] = "skip",
    catchup: Annotated[
        str, typer.Option(help="skip | latest | all (fire times missed while no worker ran).")
    ] = "latest",
    modules: Annotated[
        list[str] | None,
        typer.Option("--import", help="Module registering the handler (validates the payload)."),
    ] = None,
    as_json: Json = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Add schedule NAME starting TASK on CRON, or update it in place."""
    if modules:
        import_modules(modules)
    try:
        data = json.loads(payload)
    except json.JSONDecodeError as exc:
        fail(f"--payload is not JSON: {exc}")

    def action(scheduler: DurableScheduler) -> Awaitable[ScheduleRecord]:
        return scheduler.add_schedule(
            name,
            task,
            cron,
            timezone=timezone,
            payload=data,
            overlap=overlap,
            catchup=catchup,
        )

    _show_one(_call(database_url, schema, action), as_json)


@app.command()
def remove(
    name: Name, database_url: DatabaseUrl = DEFAULT_DATABASE_URL, schema: Schema = None
) -> None:
    """Delete NAME and its firing history (the executions it started are kept)."""
    _call(database_url, schema, lambda s: s.remove_schedule(name))
    typer.echo(f"removed schedule {name!r}")
