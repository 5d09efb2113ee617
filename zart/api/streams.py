"""``GET /api/v1/executions/{id}/streams/{key}?offset=N``: a durable stream as server-sent
events (``text/event-stream``), for a browser's ``EventSource`` or any SSE client.

Each item is one event, ``id: <offset>`` and ``data: <the item as JSON>``; the stream's end
(closed, or its execution finished) is an ``end`` event, after which the client should close
(an ``EventSource`` would otherwise reconnect, and be told the end again). A reconnect
carrying ``Last-Event-ID`` (as ``EventSource`` sends it) resumes after that offset, whatever
``offset`` says. A comment line goes out every :data:`KEEP_ALIVE` seconds of silence, so
proxies keep an idle stream open. Thin like :mod:`zart.api.routes`: parse, check, stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import StreamingResponse

from zart.errors import InvalidPayload
from zart.scheduler import DurableScheduler
from zart.wire import NO_NUL, ErrorEnvelope

ExecutionId = Annotated[str, Path(min_length=1, max_length=255, pattern=NO_NUL)]
StreamKey = Annotated[str, Path(min_length=1, max_length=200, pattern=NO_NUL)]
#: Seconds of silence after which a comment keeps the connection alive.
KEEP_ALIVE = 15.0
#: The largest offset a request may name (a 32-bit column).
MAX_OFFSET = 2**31 - 1


def stream_routes(router: APIRouter, scheduler: DurableScheduler) -> None:
    @router.get(
        "/api/v1/executions/{execution_id}/streams/{key}",
        tags=["executions"],
        response_class=StreamingResponse,
        responses={
            200: {"content": {"text/event-stream": {}}},
            404: {"model": ErrorEnvelope},
            422: {"model": ErrorEnvelope},
        },
    )
    async def read_stream(
        execution_id: ExecutionId,
        key: StreamKey,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> StreamingResponse:
        """The stream ``key`` of the execution as server-sent events from ``offset`` (or
        after ``Last-Event-ID``), following live writes until the stream is closed or the
        execution finishes (then an ``end`` event). 404 unknown execution; 422 bad offset."""
        start = offset if last_event_id is None else resume_after(last_event_id)
        entries = scheduler.stream_entries(execution_id, key, start)
        await scheduler.status(execution_id)  # 404 before the first byte
        stopping = scheduler.stream_answers_stopping()
        return StreamingResponse(
            server_sent_events(entries, stopping),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


def resume_after(last_event_id: str) -> int:
    """The offset after a ``Last-Event-ID`` (an offset this route sent), else 422."""
    text = last_event_id.strip()
    if not text.isascii() or not text.isdigit() or int(text) >= MAX_OFFSET:
        raise InvalidPayload(
            f"Last-Event-ID must be the offset of an item of the stream, not {last_event_id!r}"
        )
    return int(text) + 1


async def server_sent_events(
    entries: AsyncIterator[tuple[int, Any]], stopping: asyncio.Event
) -> AsyncIterator[str]:
    """The items as SSE events, a keep-alive comment after each :data:`KEEP_ALIVE` seconds
    of silence, and the ``end`` event; cut short, without it, once ``stopping`` is set (the
    server stops: the client reconnects and resumes)."""
    yield "retry: 1000\n\n"
    pending: asyncio.Future[tuple[int, Any]] | None = None
    stopped: asyncio.Future[Any] = asyncio.ensure_future(stopping.wait())
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(entries))
            either: set[asyncio.Future[Any]] = {pending, stopped}
            await asyncio.wait(either, timeout=KEEP_ALIVE, return_when=asyncio.FIRST_COMPLETED)
            if stopped.done():
                return
            if not pending.done():
                yield ": keep-alive\n\n"
                continue
            try:
                item_offset, value = pending.result()
            except StopAsyncIteration:
                break
            finally:
                pending = None
            yield f"id: {item_offset}\ndata: {json.dumps(value, separators=(',', ':'))}\n\n"
        yield "event: end\ndata: null\n\n"
    finally:
        stopped.cancel()
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        with contextlib.suppress(RuntimeError):
            await entries.aclose()  # type: ignore[attr-defined]
