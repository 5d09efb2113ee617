"""The message route of the HTTP API: ``POST /api/v1/executions/{id}/messages/{topic}``
(the body is the message) answers 202 with a small JSON body; an unknown execution 404, a
finished one 409, a bad topic or a body that is not JSON 422, storing nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path

from zart.repositories.messages import MAX_TOPIC_LENGTH
from zart.scheduler import DurableScheduler
from zart.wire import NO_NUL, MessageAccepted

ExecutionId = Annotated[str, Path(min_length=1, max_length=255, pattern=NO_NUL)]
Topic = Annotated[str, Path(min_length=1, max_length=MAX_TOPIC_LENGTH, pattern=NO_NUL)]


def message_routes(
    router: APIRouter,
    scheduler: DurableScheduler,
    errors: Callable[..., dict[int | str, dict[str, Any]]],
) -> None:
    @router.post(
        "/api/v1/executions/{execution_id}/messages/{topic}",
        status_code=202,
        tags=["messages"],
        responses=errors(404, 409),
    )
    async def send_message(
        execution_id: ExecutionId,
        topic: Topic,
        message: Annotated[Any, Body()] = None,
    ) -> MessageAccepted:
        """Send the message (the body) to the execution on ``topic``; its ``zart.recv(topic)``
        calls take the topic's messages in the order they were sent. 409 when the execution
        has finished."""
        await scheduler.send(execution_id, topic, message, sender="HTTP API")
        return MessageAccepted(durable_execution_id=execution_id, topic=topic, message=message)
