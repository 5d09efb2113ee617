"""``zart event send ID NAME --payload JSON``: deliver an event to an execution.

The event is stored and the execution woken in one transaction; an event sent before the
execution reaches its ``zart.wait_for_event(NAME)`` is kept for it. An unknown execution, one
that already finished, or an event of that name delivered before is one ``error:`` line and
exit code 1, with nothing stored.
"""

from __future__ import annotations

import getpass
import socket
from typing import Annotated

import typer

from zart.cli.common import (
    DatabaseUrl,
    JsonOutput,
    Schema,
    dumps,
    parse_json,
    run_on_scheduler,
)
from zart.database import DEFAULT_DATABASE_URL
from zart.wire import EventAccepted

__all__ = ["app"]

app = typer.Typer(help="Send events to executions.", no_args_is_help=True)


@app.command()
def send(
    execution_id: Annotated[str, typer.Argument(help="The execution to deliver the event to.")],
    name: Annotated[str, typer.Argument(help="The event name the handler waits for.")],
    payload: Annotated[
        str | None,
        typer.Option(
            "--payload",
            help="""The event's payload as JSON, e.g. '{"approved": true}' (default: null).""",
            show_default=False,
        ),
    ] = None,
    sender: Annotated[
        str | None,
        typer.Option(
            "--sender",
            envvar="ZART_EVENT_SENDER",
            help="Who sends it, stored with the event and shown by `zart show`"
            " (default: USER@HOST via zart event send).",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Deliver the event NAME with its JSON payload to an execution."""
    data = None if payload is None else parse_json(payload, "event payload")
    sent_by = (sender or f"{_user()}@{socket.gethostname()} via zart event send")[:255]
    run_on_scheduler(
        database_url,
        schema,
        lambda scheduler: scheduler.offer_event(execution_id, name, data, sender=sent_by),
    )
    if json_output:
        accepted = EventAccepted(durable_execution_id=execution_id, event=name, payload=data)
        typer.echo(dumps(accepted))
    else:
        typer.echo(f"event {name!r} delivered to execution {execution_id}")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return "unknown"
