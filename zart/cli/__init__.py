"""The ``zart`` command line: a root Typer app with one sub-app per area (``zart db ...``).

Every command is a thin edge (STYLE rule 7): it parses its options, runs one service call
under ``asyncio.run`` and formats the answer. Options take their defaults from ``ZART_*``
environment variables.
"""

from __future__ import annotations

import sys
from typing import Annotated, NoReturn

import typer

from zart import __version__
from zart.cli import (
    admin,
    bulk,
    db,
    events,
    executions,
    messages,
    queues,
    schedules,
    serve,
    versioning,
    worker,
)
from zart.database import mask_credentials
from zart.errors import ZartError

__all__ = ["app", "main"]

app = typer.Typer(
    name="zart",
    help="Zart: durable execution for Python applications on SQLAlchemy.",
    no_args_is_help=True,
    add_completion=False,
    # A traceback's locals can hold a database URL with its password in it.
    pretty_exceptions_show_locals=False,
)
app.add_typer(db.app, name="db")
app.add_typer(schedules.app, name="schedules")
app.add_typer(queues.app, name="queues")
app.command(name="worker")(worker.worker)
app.command(name="start")(executions.start)
app.command(name="status")(executions.status)
app.command(name="show")(executions.show)
app.command(name="list")(executions.list_)
app.command(name="wait")(executions.wait)
app.command(name="cancel")(executions.cancel)
app.command(name="stats")(executions.stats)
app.add_typer(events.app, name="event")
app.add_typer(messages.app, name="message")
app.command(name="serve")(serve.serve)
app.command(name="retry-step")(admin.retry_step)
app.command(name="restart")(admin.restart)
app.command(name="rerun")(admin.rerun)
app.add_typer(admin.pause, name="pause")
app.add_typer(bulk.app, name="bulk")
app.command(name="prune")(bulk.prune)
app.command(name="replay")(versioning.replay)
app.command(name="resume-diverged")(versioning.resume_diverged)
app.command(name="fail-diverged")(versioning.fail_diverged)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"zart {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print Zart's version and exit.",
        ),
    ] = False,
) -> None:
    """Zart: durable execution for Python applications on SQLAlchemy."""


def main() -> None:
    """Entry point of the ``zart`` script (and of ``python -m zart``).

    Every error is one ``error:`` line on stderr and exit code 1, never a traceback (which
    could show a database URL's password); commands report the errors they expect themselves,
    this catches what escapes them (a bad setting met while building the scheduler, say)."""
    try:
        app(prog_name="zart")
    except ZartError as exc:
        _exit_with(str(exc))
    except Exception as exc:  # a traceback helps no operator; the message names the problem
        _exit_with(f"{type(exc).__name__}: {exc}")


def _exit_with(message: str) -> NoReturn:
    lines = mask_credentials(message).strip().splitlines() or ["unknown error"]
    sys.stderr.write(f"error: {lines[0]}\n")
    raise SystemExit(1)
