"""What a FastAPI application needs to hold Zart: a lifespan that migrates (optionally),
runs an in-process worker (when asked) and closes the scheduler, and a dependency that gives
a request the scheduler bound to its own database session. See ``docs/fastapi.md``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar, overload

from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from zart.repositories.records import ExecutionRecord
from zart.runtime.registry import DurableHandler, ExecutionId
from zart.scheduler import DurableScheduler

In = TypeVar("In")
R = TypeVar("R")

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def lifespan(
    scheduler: DurableScheduler,
    *,
    migrate: bool = False,
    worker: bool | Mapping[str, Any] = False,
    close: bool = True,
) -> Lifespan:
    """A FastAPI lifespan for ``scheduler``: ``FastAPI(lifespan=zart.api.lifespan(...))``, or
    ``async with zart_lifespan(app):`` inside the application's own.

    At start-up it runs ``scheduler.migrate()`` if ``migrate`` (Zart's tables only; the
    application's alembic stays the application's), then an in-process worker if ``worker``
    (``True``, or the options of :meth:`~zart.DurableScheduler.run_worker`, e.g.
    ``{"concurrency": 8}``). At shutdown it stops the worker and, if ``close``, closes the
    scheduler (an engine it borrowed stays open for the application to dispose of).
    """
    options = dict(worker) if isinstance(worker, Mapping) else {}

    @asynccontextmanager
    async def run(_app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if close:
                stack.push_async_callback(scheduler.close)
            if migrate:
                await scheduler.migrate()
            if worker:
                await stack.enter_async_context(scheduler.run_worker(**options))
            yield

    return run


class SessionScheduler:
    """The scheduler bound to one request's ``AsyncSession``: ``start`` and ``offer_event``
    write in the request's transaction (``session=``: both commit with the request's own
    writes, or neither), the other calls are the scheduler's."""

    def __init__(self, scheduler: DurableScheduler, session: AsyncSession) -> None:
        self.scheduler = scheduler
        self.session = session

    @overload
    async def start(
        self, handler: DurableHandler[[In], R], payload: In, *, execution_id: str | None = None
    ) -> ExecutionId[R]: ...
    @overload
    async def start(
        self,
        handler: DurableHandler[[], R],
        payload: None = None,
        *,
        execution_id: str | None = None,
    ) -> ExecutionId[R]: ...
    @overload
    async def start(
        self, handler: str, payload: Any = None, *, execution_id: str | None = None
    ) -> ExecutionId[Any]: ...
    async def start(
        self, handler: Any, payload: Any = None, *, execution_id: str | None = None
    ) -> ExecutionId[Any]:
        """:meth:`DurableScheduler.start` in the request's transaction."""
        return await self.scheduler.start(
            handler, payload, execution_id=execution_id, session=self.session
        )

    async def offer_event(
        self, execution_id: str, name: str, payload: Any = None, *, sender: str | None = None
    ) -> None:
        """:meth:`DurableScheduler.offer_event` in the request's transaction."""
        await self.scheduler.offer_event(
            execution_id, name, payload, session=self.session, sender=sender
        )

    async def status(self, execution_id: str) -> ExecutionRecord:
        """:meth:`DurableScheduler.status`."""
        return await self.scheduler.status(execution_id)

    async def cancel(self, execution_id: str) -> bool:
        """:meth:`DurableScheduler.cancel` (its own transaction: a cancel is not undone)."""
        return await self.scheduler.cancel(execution_id)


def session_scheduler(
    scheduler: DurableScheduler, session: Callable[..., Any]
) -> Callable[..., SessionScheduler]:
    """A FastAPI dependency giving a request ``scheduler`` bound to its session, where
    ``session`` is the application's own session dependency (the one its routes use)::

        durable = zart.api.session_scheduler(scheduler, get_session)

        @app.post("/orders")
        async def create_order(
            db: Annotated[AsyncSession, Depends(get_session)],
            zart: Annotated[SessionScheduler, Depends(durable)],
        ): ...

    FastAPI caches a dependency per request, so ``db`` and ``zart.session`` are one session.
    """

    def bound(request_session: AsyncSession = Depends(session)) -> SessionScheduler:  # noqa: B008
        return SessionScheduler(scheduler, request_session)

    return bound
