"""``zart bulk cancel|restart|retry-step``: one action on every execution a filter matches.

Each command counts the matches first and asks before it changes anything (``--yes`` skips
the question; without a terminal to ask on, ``--yes`` is required); ``--dry-run`` only counts.
Each execution's action is its own transaction (see :mod:`zart.scheduler.bulk`).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Annotated

import typer

from zart.cli.admin import TriggeredBy
from zart.cli.common import (
    CreatedFrom,
    CreatedTo,
    DatabaseUrl,
    JsonOutput,
    Schema,
    TagFilter,
    dumps,
    fail,
    parse_tag_options,
    run_on_scheduler,
)
from zart.database import DEFAULT_DATABASE_URL
from zart.models import ExecutionStatus
from zart.scheduler import DurableScheduler
from zart.scheduler.bulk import BulkResult
from zart.wire import BulkAnswer, PruneAnswer

app = typer.Typer(
    help="Cancel, restart or retry a step of every execution a filter matches.",
    no_args_is_help=True,
)

Task = Annotated[
    str | None,
    typer.Option("--task", help="Only executions of this task name.", show_default=False),
]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Only count the executions it would change.")
]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before changing them.")]

#: The past tense of each action, for its report.
DONE = {"cancel": "cancelled", "restart": "restarted", "retry-step": "retried a step of"}


def cancel(
    status: Annotated[
        ExecutionStatus | None,
        typer.Option(
            "--status",
            help="Only executions in this status (scheduled, running or waiting; default all"
            " three).",
            show_default=False,
        ),
    ] = None,
    task: Task = None,
    tag: TagFilter = None,
    created_from: CreatedFrom = None,
    created_to: CreatedTo = None,
    dry_run: DryRun = False,
    yes: Yes = False,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Cancel every unfinished execution that matches (their on_cancel included)."""
    tags = parse_tag_options(tag)

    def action(scheduler: DurableScheduler, dry: bool) -> Awaitable[BulkResult]:
        return scheduler.cancel_many(
            status=status,
            task_name=task,
            tags=tags,
            created_from=created_from,
            created_to=created_to,
            dry_run=dry,
        )

    _run(action, dry_run, yes, json_output, database_url, schema)


def restart(
    status: Annotated[
        ExecutionStatus,
        typer.Option(
            "--status", help="Only executions in this status (failed, cancelled or completed)."
        ),
    ] = ExecutionStatus.FAILED,
    task: Task = None,
    tag: TagFilter = None,
    created_from: CreatedFrom = None,
    created_to: CreatedTo = None,
    triggered_by: TriggeredBy = None,
    dry_run: DryRun = False,
    yes: Yes = False,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Restart every finished execution that matches, each in a new run."""
    tags = parse_tag_options(tag)

    def action(scheduler: DurableScheduler, dry: bool) -> Awaitable[BulkResult]:
        return scheduler.restart_many(
            status=status,
            task_name=task,
            tags=tags,
            created_from=created_from,
            created_to=created_to,
            triggered_by=triggered_by,
            dry_run=dry,
        )

    _run(action, dry_run, yes, json_output, database_url, schema)


def retry_step(
    step: Annotated[str, typer.Argument(help="The failed step's name.", show_default=False)],
    task: Task = None,
    tag: TagFilter = None,
    created_from: CreatedFrom = None,
    created_to: CreatedTo = None,
    triggered_by: TriggeredBy = None,
    dry_run: DryRun = False,
    yes: Yes = False,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Run the failed step STEP once more in every failed execution that matches."""
    tags = parse_tag_options(tag)

    def action(scheduler: DurableScheduler, dry: bool) -> Awaitable[BulkResult]:
        return scheduler.retry_step_many(
            step,
            task_name=task,
            tags=tags,
            created_from=created_from,
            created_to=created_to,
            triggered_by=triggered_by,
            dry_run=dry,
        )

    _run(action, dry_run, yes, json_output, database_url, schema)


app.command(name="cancel")(cancel)
app.command(name="restart")(restart)
app.command(name="retry-step")(retry_step)


def _run(
    action: Callable[[DurableScheduler, bool], Awaitable[BulkResult]],
    dry_run: bool,
    yes: bool,
    json_output: bool,
    database_url: str,
    schema: str | None,
) -> None:
    """Count the matches; unless ``dry_run``, ask (or take ``--yes``), then act and report."""
    counted = run_on_scheduler(database_url, schema, lambda s: action(s, True))
    if not dry_run and counted.matched and not yes:
        question = f"{counted.action} {counted.matched} execution(s)?"
        if not sys.stdin.isatty():
            fail(f"{question} Add --yes to go ahead (nothing was changed; --dry-run only counts)")
        if not typer.confirm(question):
            fail("nothing was changed")
    result = counted
    if not dry_run and counted.matched:
        result = run_on_scheduler(database_url, schema, lambda s: action(s, False))
    if json_output:
        typer.echo(dumps(BulkAnswer.of(result)))
        return
    if result.dry_run:
        typer.echo(
            f"{result.action}: {result.matched} execution(s) match (dry run, nothing changed)"
        )
        return
    typer.echo(
        f"{DONE[result.action]} {len(result.done)} execution(s) of {result.matched} matched"
        f"; {len(result.skipped)} skipped"
    )
    for execution_id, reason in result.skipped:
        typer.echo(f"  skipped {execution_id}: {reason}")


def prune(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            help="Delete executions that finished longer ago than this (e.g. 30d, 12h).",
        ),
    ] = "30d",
    status: Annotated[
        ExecutionStatus | None,
        typer.Option(
            "--status",
            help="Only executions in this status (completed, failed or cancelled; default all"
            " three).",
            show_default=False,
        ),
    ] = None,
    task: Task = None,
    dry_run: DryRun = False,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Delete finished executions older than --older-than, with all their rows."""
    result = run_on_scheduler(
        database_url,
        schema,
        lambda s: s.prune(older_than, status=status, task_name=task, dry_run=dry_run),
    )
    if json_output:
        typer.echo(dumps(PruneAnswer.of(result)))
    elif result.dry_run:
        typer.echo(f"prune: {result.matched} execution(s) match (dry run, nothing deleted)")
    else:
        typer.echo(f"deleted {result.deleted} finished execution(s) older than {older_than}")
