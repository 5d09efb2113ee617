"""``zart start|status|show|list|wait|cancel|stats``: executions from the command line.

Each command parses its options, calls the :class:`~zart.DurableScheduler` and formats the
answer: text for people, or with ``--json`` the HTTP API's camelCase shapes for scripts. A
problem the user can fix (unknown id or task, bad payload, unreachable database) is one
``error: ...`` line on stderr and exit code 1, with nothing stored.

``zart wait`` (and ``zart start --wait``) exit 0 when the execution completed, 1 when it failed
or was cancelled, 3 when the timeout ran out first (the execution keeps running) and 130 when
interrupted with Ctrl-C.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from zart.cli import progress, timeline
from zart.cli.common import (
    CreatedFrom,
    CreatedTo,
    DatabaseUrl,
    JsonOutput,
    Schema,
    TagFilter,
    Tags,
    dumps,
    fail,
    parse_json,
    parse_tag_options,
    run_on_scheduler,
)
from zart.cli.worker import import_modules
from zart.database import DEFAULT_DATABASE_URL
from zart.errors import (
    ConfigurationError,
    ExecutionNotFound,
    InvalidPayload,
    UnknownTask,
    WaitTimedOut,
)
from zart.models import ExecutionStatus
from zart.repositories.records import ExecutionPage, ExecutionRecord
from zart.runtime.registry import find_handler
from zart.scheduler import DurableScheduler
from zart.wire import Detail, Execution, ExecutionList, Stats

__all__ = ["cancel", "list_", "show", "start", "stats", "status", "wait"]

#: ``zart wait``'s exit code when the timeout ran out before the execution finished.
EXIT_TIMED_OUT = 3
#: ... and when the user interrupted the wait (the shell's code for SIGINT).
EXIT_INTERRUPTED = 130

ExecutionId = Annotated[str, typer.Argument(help="The execution id.", show_default=False)]
WaitTimeout = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        envvar="ZART_WAIT_TIMEOUT",
        min=0,
        help="Seconds to wait at most (default: until the execution finishes).",
        show_default=False,
    ),
]
Modules = Annotated[
    list[str] | None,
    typer.Option(
        "--module",
        "-m",
        envvar="ZART_MODULES",
        help=(
            "Module whose import registers durable handlers (repeatable; ZART_MODULES takes"
            " several, space-separated): the task is then found and its payload validated here."
        ),
        show_default=False,
    ),
]


class SortBy(StrEnum):
    created_at = "created_at"
    completed_at = "completed_at"
    status = "status"
    task_name = "task_name"


def start(
    task: Annotated[str, typer.Argument(help="Task name of a durable handler.")],
    payload: Annotated[
        str | None,
        typer.Option(
            "--payload",
            help="""The handler's input as JSON, e.g. '{"email": "a@b.c"}' (default: null,"""
            " for a handler that takes no input).",
            show_default=False,
        ),
    ] = None,
    execution_id: Annotated[
        str | None,
        typer.Option(
            "--execution-id",
            help="Idempotency key (default: a new UUID). Starting an existing id again with the"
            " same task and payload starts nothing; with another task or payload it is an error.",
            show_default=False,
        ),
    ] = None,
    singleton_key: Annotated[
        str | None,
        typer.Option(
            "--singleton-key",
            help="At most one unfinished execution of TASK per key: while one holds it, its id"
            " is printed and nothing new starts.",
            show_default=False,
        ),
    ] = None,
    debounce: Annotated[
        str | None,
        typer.Option(
            "--debounce",
            help="A window (30s, 5m): the execution runs once, this long after the last start"
            " of its key, with that start's payload; every start in the window prints its id.",
            show_default=False,
        ),
    ] = None,
    debounce_key: Annotated[
        str | None,
        typer.Option(
            "--debounce-key",
            help="The key of --debounce (default: one window for TASK).",
            show_default=False,
        ),
    ] = None,
    wait_: Annotated[
        bool,
        typer.Option("--wait", help="Then wait for the execution to finish, as `zart wait` does."),
    ] = False,
    timeout: WaitTimeout = None,
    modules: Modules = None,
    tag: Tags = None,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Start an execution of TASK and print its id.

    With --module (or ZART_MODULES) the modules are imported first:
    TASK must be registered by them, and PAYLOAD is validated against
    the handler's input before anything is stored.

    Without, TASK must be served by a live worker (one that heartbeated
    in the last 2 minutes) and PAYLOAD is stored as given: that worker
    validates it, and a payload it refuses fails the execution. A note on
    stderr says so.
    """
    data = None if payload is None else parse_json(payload)
    tags = parse_tag_options(tag)
    if modules:
        import_modules(modules)

    async def action(scheduler: DurableScheduler) -> tuple[ExecutionRecord, bool, bool]:
        existed = execution_id is not None and await _exists(scheduler, execution_id)
        try:
            started = await scheduler.start(
                task,
                data,
                execution_id=execution_id,
                tags=tags,
                singleton_key=singleton_key,
                debounce=debounce,
                debounce_key=debounce_key,
            )
        except UnknownTask as exc:
            if modules:
                raise
            hint = "no live worker serves it either; --module imports handlers here"
            raise ConfigurationError(f"{exc} ({hint})") from None
        except InvalidPayload as exc:
            raise InvalidPayload(_one_line(exc, task)) from exc
        record = await scheduler.status(started)
        if not wait_:
            return record, existed, False
        if not json_output:
            typer.echo(_started_line(record, existed))
        finished, timed_out = await _follow(scheduler, started, timeout, json_output)
        return finished, existed, timed_out

    try:
        record, existed, timed_out = run_on_scheduler(database_url, schema, action)
    except KeyboardInterrupt:
        _interrupted()
    if find_handler(task) is None:
        typer.echo(
            f"note: the payload was not validated here (task {task!r} is not registered in this"
            " process; --module imports it); the worker that runs it validates it, and a payload"
            " it refuses fails the execution",
            err=True,
        )
    if wait_:
        _finish(record, timed_out, timeout, json_output)
    elif json_output:
        typer.echo(dumps(Execution.of(record)))
    else:
        typer.echo(_started_line(record, existed))


async def _exists(scheduler: DurableScheduler, execution_id: str) -> bool:
    try:
        await scheduler.status(execution_id)
    except ExecutionNotFound:
        return False
    return True


def _one_line(error: InvalidPayload, task: str) -> str:
    """A payload's validation errors on one line: ``field: problem; other: problem``."""
    cause = error.__cause__
    if not isinstance(cause, ValidationError):
        return " ".join(str(error).split())
    problems = "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or 'payload'}: {problem['msg']}"
        for problem in cause.errors()
    )
    return f"invalid payload for task {task!r}: {problems}"


def _started_line(record: ExecutionRecord, existed: bool) -> str:
    if existed:
        return (
            f"execution {record.execution_id} already exists ({record.status.value},"
            f" task {record.task_name}); started nothing new"
        )
    return f"started {record.execution_id} (task {record.task_name}, {record.status.value})"


def status(
    execution_id: ExecutionId,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Print an execution's status, times, what it waits for, and its result or error."""

    async def action(scheduler: DurableScheduler) -> tuple[ExecutionRecord, Any, Any]:
        record = await scheduler.status(execution_id)
        waits = (await scheduler.pending_waits([record])).get(execution_id, ())
        return record, waits, await scheduler.divergence(execution_id)

    record, waits, hold = run_on_scheduler(database_url, schema, action)
    if json_output:
        typer.echo(dumps(Execution.of(record)))
    else:
        held = None if hold is None else hold.reason or "replay diverged"
        _echo_lines(timeline.summary_lines(record, waits, held=held))


def show(
    execution_id: ExecutionId,
    run: Annotated[
        str | None,
        typer.Option(
            "--run",
            help="Run id whose steps to show (default: the current run).",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Print an execution, its runs and its step timeline.

    Steps are listed in the order they ran, each with its attempts, errors and durations.
    """
    detail = run_on_scheduler(
        database_url, schema, lambda s: s.execution_detail(execution_id, run_id=run)
    )
    if json_output:
        typer.echo(dumps(Detail.of(detail)))
    else:
        _echo_lines(timeline.execution_lines(detail))


def list_(
    status: Annotated[
        ExecutionStatus | None,
        typer.Option("--status", help="Only executions in this status.", show_default=False),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option("--task", help="Only executions of this task name.", show_default=False),
    ] = None,
    search: Annotated[
        str | None,
        typer.Option(
            "--search",
            help="Only executions whose id or task name contains this text (any case).",
            show_default=False,
        ),
    ] = None,
    created_from: CreatedFrom = None,
    created_to: CreatedTo = None,
    tag: TagFilter = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=1000, help="Executions per page.")
    ] = 20,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Executions to skip.")] = 0,
    sort_by: Annotated[SortBy, typer.Option("--sort-by", help="Order by this field.")] = (
        SortBy.created_at
    ),
    ascending: Annotated[
        bool, typer.Option("--asc", help="Oldest (or smallest) first; default newest first.")
    ] = False,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """List executions, newest first, with the total number that match."""
    tags = parse_tag_options(tag)

    async def action(scheduler: DurableScheduler) -> tuple[ExecutionPage, Any]:
        page = await scheduler.list_executions(
            status=status,
            task_name=task,
            created_from=created_from,
            created_to=created_to,
            search=search,
            tags=tags,
            sort_by=sort_by.value,
            descending=not ascending,
            limit=limit,
            offset=offset,
        )
        return page, {} if json_output else await scheduler.pending_waits(page.items)

    page, waits = run_on_scheduler(database_url, schema, action)
    if json_output:
        typer.echo(
            dumps(
                ExecutionList(
                    items=[Execution.of(record) for record in page.items],
                    total=page.total,
                    limit=limit,
                    offset=offset,
                )
            )
        )
        return
    if not page.items:
        typer.echo(f"no executions on this page ({page.total} match)")
        return
    rows = [
        [
            record.execution_id,
            record.task_name,
            record.status.value,
            str(record.run_count),
            timeline.moment(record.created_at),
            timeline.duration(record.created_at, record.completed_at)
            if record.completed_at
            else "-",
            "; ".join(timeline.wait_text(step) for step in waits.get(record.execution_id, ()))
            or "-",
        ]
        for record in page.items
    ]
    headers = ["EXECUTION ID", "TASK", "STATUS", "RUNS", "CREATED", "TOOK", "WAITS FOR"]
    _echo_lines(timeline.table(headers, rows))
    last = offset + len(page.items)
    typer.echo(f"{offset + 1}-{last} of {page.total} executions")


def wait(
    execution_id: ExecutionId,
    timeout: WaitTimeout = None,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Wait for an execution to finish, showing its steps as they land.

    Exit code 0 when it completed (its result is printed), 1 when it
    failed or was cancelled, 3 when the timeout ran out first (the
    execution keeps running), 130 when interrupted.
    """

    async def action(scheduler: DurableScheduler) -> tuple[ExecutionRecord, bool]:
        return await _follow(scheduler, execution_id, timeout, json_output)

    try:
        record, timed_out = run_on_scheduler(database_url, schema, action)
    except KeyboardInterrupt:
        _interrupted()
    _finish(record, timed_out, timeout, json_output)


async def _follow(
    scheduler: DurableScheduler, execution_id: str, within: float | None, quiet: bool
) -> tuple[ExecutionRecord, bool]:
    """The execution once finished (and False), or as it stands when ``within`` seconds ran
    out (and True). Progress is reported unless ``quiet``."""
    try:
        if quiet:
            return await progress.follow(scheduler, execution_id, within, _Silent()), False
        with progress.reporter() as report:
            return await progress.follow(scheduler, execution_id, within, report), False
    except WaitTimedOut:
        return await scheduler.status(execution_id), True


class _Silent:
    def line(self, text: str) -> None:
        pass

    def status(self, text: str) -> None:
        pass


def _finish(
    record: ExecutionRecord, timed_out: bool, timeout: float | None, json_output: bool
) -> None:
    """Print how a wait ended and exit with its code."""
    if json_output:
        typer.echo(dumps(Execution.of(record)))
    name = record.execution_id
    if timed_out:
        typer.echo(
            f"error: execution {name!r} is still {record.status.value} after"
            f" {timeout or 0:g}s; it keeps running",
            err=True,
        )
        raise typer.Exit(EXIT_TIMED_OUT)
    if record.status is ExecutionStatus.FAILED:
        fail(f"execution {name!r} failed: {timeline.error_text(record.error)}")
    if record.status is ExecutionStatus.CANCELLED:
        fail(f"execution {name!r} was cancelled")
    if not json_output:
        took = timeline.duration(record.created_at, record.completed_at or record.updated_at)
        typer.echo(f"completed after {took}; result: {timeline.value_text(record.result, None)}")


def _interrupted() -> None:
    typer.echo("stopped waiting; the execution keeps running", err=True)
    raise typer.Exit(EXIT_INTERRUPTED)


def cancel(
    execution_id: ExecutionId,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Cancel an unfinished execution.

    A worker running it loses its lease: the step in flight may finish,
    but its outcome is not recorded and no further step runs. An
    execution that already finished is an error (exit code 1) and stays
    as it is. If a worker had begun it and its task declares on_cancel,
    the compensation starts (its id is printed).
    """

    async def action(scheduler: DurableScheduler) -> tuple[bool, ExecutionRecord]:
        cancelled = await scheduler.cancel(execution_id)
        return cancelled, await scheduler.status(execution_id)

    cancelled, record = run_on_scheduler(database_url, schema, action)
    if not cancelled:
        fail(f"execution {execution_id!r} already finished ({record.status.value})")
    if json_output:
        typer.echo(dumps(Execution.of(record)))
    elif record.compensation_id is not None:
        typer.echo(f"cancelled {execution_id}; its on_cancel runs as {record.compensation_id}")
    else:
        typer.echo(f"cancelled {execution_id}")


def stats(
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Count executions in each status."""
    counts = run_on_scheduler(database_url, schema, lambda s: s.stats())
    if json_output:
        typer.echo(dumps(Stats.of(counts)))
        return
    rows = [[state.value, str(counts.get(state, 0))] for state in ExecutionStatus]
    rows.append(["total", str(sum(counts.values()))])
    _echo_lines(timeline.table(["STATUS", "EXECUTIONS"], rows))


def _echo_lines(lines: Iterable[str]) -> None:
    for line in lines:
        typer.echo(line)
