"""The queue routes of the HTTP API (``/zart/admin/v1/queues``): list queues with their
figures, read one, set its limits, pause and resume it. Each calls one
:class:`~zart.DurableScheduler` method; a bad name, limit or rate string answers 422
(``invalid_queue``) and stores nothing, an unknown queue 404 (``queue_not_found``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import JsonValue

from zart.models.queues import LIMITS
from zart.repositories.queues import QueueRecord
from zart.scheduler import DurableScheduler
from zart.scheduler.queues import UNCHANGED
from zart.wire import Wire

ADMIN = "/zart/admin/v1"


class QueueOut(Wire):
    """A queue: its limits (``null``: none), state and figures."""

    name: str
    concurrency: int | None
    partition_concurrency: int | None
    rate_limit: str | None
    #: The rate limit of each partition key's starts.
    partition_rate_limit: str | None
    paused: bool
    #: Executions scheduled or waiting in it.
    queued: int
    #: Executions of it running now (a live lease).
    running: int
    #: Starts within the rate limit's current window.
    recent_starts: int

    @classmethod
    def of(cls, record: QueueRecord) -> QueueOut:
        return cls(
            name=record.name,
            **record.limits.declaration(),
            paused=record.paused,
            queued=record.queued,
            running=record.running,
            recent_starts=record.recent_starts,
        )


class SetQueue(Wire):
    """``PUT /zart/admin/v1/queues/{name}``: the limits to change; one left out stays,
    ``null`` removes it. Checked by the scheduler (one place for every edge)."""

    concurrency: JsonValue = None
    partition_concurrency: JsonValue = None
    rate_limit: JsonValue = None
    partition_rate_limit: JsonValue = None


def queue_routes(router: APIRouter, scheduler: DurableScheduler, errors: Any) -> None:
    """Add the queue routes to ``router``."""

    @router.get(f"{ADMIN}/queues", tags=["queues"])
    async def list_queues() -> list[QueueOut]:
        """Every queue with its limits, state, depth and running count."""
        return [QueueOut.of(q) for q in await scheduler.list_queues()]

    @router.get(f"{ADMIN}/queues/{{name}}", tags=["queues"], responses=errors(404))
    async def get_queue(name: str) -> QueueOut:
        return QueueOut.of(await scheduler.get_queue(name))

    @router.put(f"{ADMIN}/queues/{{name}}", tags=["queues"], responses=errors(422))
    async def set_queue(name: str, body: SetQueue) -> QueueOut:
        """Change the queue's limits at run time (creating it); every worker applies them
        within one poll interval."""
        given = body.model_fields_set
        changes = {field: getattr(body, field) if field in given else UNCHANGED for field in LIMITS}
        await scheduler.set_queue(name, **changes)
        return QueueOut.of(await scheduler.get_queue(name))

    @router.post(f"{ADMIN}/queues/{{name}}/pause", tags=["queues"], responses=errors(404))
    async def pause_queue(name: str) -> QueueOut:
        """Stop claiming the queue's executions (running ones go on)."""
        await scheduler.pause_queue(name)
        return QueueOut.of(await scheduler.get_queue(name))

    @router.post(f"{ADMIN}/queues/{{name}}/resume", tags=["queues"], responses=errors(404))
    async def resume_queue(name: str) -> QueueOut:
        """Claim the queue's executions again, within its limits."""
        await scheduler.resume_queue(name)
        return QueueOut.of(await scheduler.get_queue(name))
