"""``zart replay MODULE...`` (the replay check of a deploy) and ``zart resume-diverged`` /
``zart fail-diverged`` (an operator's answer to an execution held on a divergence). See
``docs/versioning.md``."""

from __future__ import annotations

from typing import Annotated

import typer

from zart.cli.admin import ExecutionId, TriggeredBy
from zart.cli.common import DatabaseUrl, JsonOutput, Schema, dumps, fail, run_on_scheduler
from zart.cli.worker import import_modules
from zart.database import DEFAULT_DATABASE_URL
from zart.runtime.replays import DEFAULT_LIMIT
from zart.wire import Execution

__all__ = ["fail_diverged", "replay", "resume_diverged"]


def replay(
    modules: Annotated[
        list[str],
        typer.Argument(help="Modules whose durable handlers to check.", show_default=False),
    ],
    task: Annotated[
        list[str] | None,
        typer.Option(
            "--task",
            help="Only this task (repeatable; default: every task the modules register).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option("--limit", min=1, help="The most recent executions replayed per task."),
    ] = DEFAULT_LIMIT,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Replay stored histories (in flight and finished) against the current code, every step,
    sleep and wait answered from the history: no step runs, nothing is written. Prints each
    divergence; exits 1 on any."""
    names = import_modules(modules)
    unknown = sorted(set(task or ()) - set(names))
    if unknown:
        fail(f"no durable handler {', '.join(map(repr, unknown))} is registered by the modules")
    report = run_on_scheduler(
        database_url, schema, lambda s: s.replay(task_names=task or names, limit=limit)
    )
    for verdict in report.divergences:
        typer.echo(
            f"DIVERGED {verdict.execution_id} (task {verdict.task_name!r},"
            f" {verdict.status.value}): {verdict.divergence}"
        )
    total = len(report.verdicts)
    typer.echo(f"replayed {total} execution(s): {len(report.divergences)} diverged")
    if not report.ok:
        raise typer.Exit(1)


def resume_diverged(
    execution_id: ExecutionId,
    triggered_by: TriggeredBy = None,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Release an execution held on a replay divergence (after deploying a fix): it replays
    again at once, and is held again if it still diverges."""
    run_on_scheduler(database_url, schema, lambda s: s.resume_diverged(execution_id, triggered_by))
    typer.echo(f"resumed {execution_id}: it replays again")


def fail_diverged(
    execution_id: ExecutionId,
    triggered_by: TriggeredBy = None,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Fail an execution held on a replay divergence (error kind non_deterministic_replay)."""
    record = run_on_scheduler(
        database_url, schema, lambda s: s.fail_diverged(execution_id, triggered_by)
    )
    if json_output:
        typer.echo(dumps(Execution.of(record)))
    else:
        typer.echo(f"failed {execution_id}: its replay diverged")
