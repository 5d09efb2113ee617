"""``zart message send ID TOPIC JSON``: send a message to an execution.

The message is stored and the execution woken in one transaction; its ``zart.recv(TOPIC)``
calls take the topic's messages in the order they were sent, and a message sent before the
``recv`` is kept for it. An unknown execution, one that already finished, a bad topic or a
message that is not JSON is one ``error:`` line and exit code 1, with nothing stored.
"""

from __future__ import annotations

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
from zart.wire import MessageAccepted

__all__ = ["app"]

app = typer.Typer(help="Send messages to executions.", no_args_is_help=True)


@app.command()
def send(
    execution_id: Annotated[str, typer.Argument(help="The execution to send the message to.")],
    topic: Annotated[str, typer.Argument(help="The topic its zart.recv(TOPIC) reads.")],
    message: Annotated[str, typer.Argument(help="""The message as JSON, e.g. '{"n": 1}'.""")],
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Send the JSON MESSAGE to an execution on TOPIC."""
    data = parse_json(message, "message")
    run_on_scheduler(
        database_url,
        schema,
        lambda scheduler: scheduler.send(execution_id, topic, data, sender="zart message send"),
    )
    if json_output:
        typer.echo(
            dumps(MessageAccepted(durable_execution_id=execution_id, topic=topic, message=data))
        )
    else:
        typer.echo(f"message delivered to execution {execution_id} on topic {topic!r}")
