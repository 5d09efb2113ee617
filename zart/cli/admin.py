"""``zart retry-step|restart|rerun`` and ``zart pause add|list|remove``: the admin operations
of the HTTP API (``/zart/admin/v1/...``) from the command line, with the same checks and the
same error messages (one ``error:`` line, exit code 1, nothing changed), and ``--json``
printing the API's documents (:mod:`zart.wire`). What each operation does: ``docs/admin.md``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated

import typer

from zart.cli import timeline
from zart.cli.common import (
    DatabaseUrl,
    JsonOutput,
    Schema,
    dumps,
    fail,
    parse_json,
    run_on_scheduler,
)
from zart.database import DEFAULT_DATABASE_URL
from zart.durations import parse_duration
from zart.errors import ZartError
from zart.repositories.records import PauseRuleRecord
from zart.scheduler import DurableScheduler
from zart.wire import PauseRule, RerunAnswer, RestartAnswer, RetryStepAnswer

__all__ = ["pause", "rerun", "restart", "retry_step"]

ExecutionId = Annotated[str, typer.Argument(help="The execution id.", show_default=False)]
TriggeredBy = Annotated[
    str | None,
    typer.Option(
        "--triggered-by",
        envvar="ZART_TRIGGERED_BY",
        help="Who asks, kept in the run's and the rule's history.",
        show_default=False,
    ),
]


def retry_step(
    execution_id: ExecutionId,
    step: Annotated[str, typer.Argument(help="The failed step's name.", show_default=False)],
    triggered_by: TriggeredBy = None,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Run a failed step of a failed execution once more, in its current run."""
    retried = run_on_scheduler(
        database_url, schema, lambda s: s.retry_step(execution_id, step, triggered_by)
    )
    if json_output:
        typer.echo(dumps(RetryStepAnswer(new_task_id=retried.task_id)))
    else:
        typer.echo(
            f"retrying step {step!r} of {execution_id} (attempt {retried.attempt_number},"
            f" run {retried.run_id})"
        )


def restart(
    execution_id: ExecutionId,
    payload: Annotated[
        str | None,
        typer.Option(
            "--payload",
            help="A new input as JSON (default: the current one).",
            show_default=False,
        ),
    ] = None,
    triggered_by: TriggeredBy = None,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Start the execution over in a new run; earlier runs stay in the history."""
    data = None if payload is None else parse_json(payload)
    run = run_on_scheduler(
        database_url, schema, lambda s: s.restart(execution_id, data, triggered_by)
    )
    if json_output:
        typer.echo(dumps(RestartAnswer(new_run_id=run.run_id)))
    else:
        typer.echo(f"restarted {execution_id}: run {run.run_index} ({run.run_id})")


def rerun(
    execution_id: ExecutionId,
    steps: Annotated[
        list[str] | None,
        typer.Option("--step", help="A step to run again (repeatable).", show_default=False),
    ] = None,
    preserve: Annotated[
        list[str] | None,
        typer.Option(
            "--preserve",
            help="A step whose stored outcome the new run keeps (repeatable).",
            show_default=False,
        ),
    ] = None,
    triggered_by: TriggeredBy = None,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """A new run that keeps the --preserve steps' outcomes; every other step runs again."""
    new = run_on_scheduler(
        database_url,
        schema,
        lambda s: s.rerun(execution_id, steps or (), preserve or (), triggered_by),
    )
    answer = RerunAnswer(new_run_number=new.run.run_index, effective_rerun=list(new.rerun_steps))
    if json_output:
        typer.echo(dumps(answer))
    else:
        again = ", ".join(new.rerun_steps) or "none recorded yet"
        typer.echo(f"rerunning {execution_id} as run {new.run.run_index}; runs again: {again}")


pause = typer.Typer(
    help="Pause rules: hold back matching steps until removed or expired.",
    no_args_is_help=True,
)


@pause.command("add")
def pause_add(
    execution_id: Annotated[
        str | None, typer.Option("--execution-id", help="Only this execution.", show_default=False)
    ] = None,
    task: Annotated[
        str | None, typer.Option("--task", help="Only this task.", show_default=False)
    ] = None,
    step_pattern: Annotated[
        str | None,
        typer.Option("--step-pattern", help="Steps matching this glob, e.g. 'send-*'."),
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", show_default=False)] = None,
    expires_in: Annotated[
        str | None,
        typer.Option(
            "--expires-in", help="Expire after this long (30m, 2h, 1d).", show_default=False
        ),
    ] = None,
    triggered_by: TriggeredBy = None,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Add a pause rule (at least one of --execution-id, --task, --step-pattern)."""
    lasting = _duration(expires_in)

    async def add(scheduler: DurableScheduler) -> PauseRuleRecord:
        expires_at = None if lasting is None else scheduler.clock.now() + lasting
        return await scheduler.pause(
            execution_id=execution_id,
            task_name=task,
            step_pattern=step_pattern,
            expires_at=expires_at,
            reason=reason,
            triggered_by=triggered_by,
        )

    rule = run_on_scheduler(database_url, schema, add)
    if json_output:
        typer.echo(dumps(PauseRule.of(rule)))
    else:
        typer.echo(f"added pause rule {rule.rule_id} ({_scope(rule)})")


@pause.command("list")
def pause_list(
    include_removed: Annotated[
        bool,
        typer.Option("--all", help="Removed and expired rules too."),
    ] = False,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """The active pause rules."""
    rules = run_on_scheduler(
        database_url, schema, lambda s: s.list_pause_rules(include_inactive=include_removed)
    )
    if json_output:
        documents = [PauseRule.of(r).model_dump(mode="json", by_alias=True) for r in rules]
        typer.echo(json.dumps(documents, ensure_ascii=False, indent=2))
        return
    if not rules:
        typer.echo("no pause rules")
        return
    rows = [
        [
            rule.rule_id,
            _scope(rule),
            rule.expires_at.isoformat(timespec="seconds") if rule.expires_at else "-",
            "removed" if rule.deleted_at else "active",
            rule.reason or "-",
        ]
        for rule in rules
    ]
    for line in timeline.table(["RULE ID", "HOLDS", "EXPIRES", "STATE", "REASON"], rows):
        typer.echo(line)


@pause.command("remove")
def pause_remove(
    rule_id: Annotated[str, typer.Argument(help="The rule's id.", show_default=False)],
    triggered_by: TriggeredBy = None,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Remove a pause rule (kept for the audit trail); the executions it held resume."""
    rule = run_on_scheduler(
        database_url, schema, lambda s: s.remove_pause_rule(rule_id, triggered_by)
    )
    if json_output:
        typer.echo(dumps(PauseRule.of(rule)))
    else:
        typer.echo(f"removed pause rule {rule.rule_id}")


def _duration(text: str | None) -> timedelta | None:
    if text is None:
        return None
    try:
        return parse_duration(text, name="--expires-in")
    except ZartError as exc:
        fail(str(exc))


def _scope(rule: PauseRuleRecord) -> str:
    parts = [
        f"execution {rule.execution_id}" if rule.execution_id else "",
        f"task {rule.task_name}" if rule.task_name else "",
        f"steps {rule.step_pattern}" if rule.step_pattern else "",
    ]
    return ", ".join(p for p in parts if p)
