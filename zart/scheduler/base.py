"""What the parts of :class:`~zart.DurableScheduler` share: its engine, clock, runtime and
in-process workers, and its life cycle (context manager, ``close``, ``migrate``)."""

from __future__ import annotations

import asyncio
import weakref
from datetime import timedelta
from types import TracebackType
from typing import Self

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from zart.clock import SYSTEM_CLOCK, Clock
from zart.database import create_engine, explain_errors, with_schema
from zart.errors import ConfigurationError
from zart.migrations import upgrade
from zart.repositories import wakeups
from zart.repositories import workers as workers_repo
from zart.repositories.records import ExecutionRecord
from zart.runtime.execution import Runtime
from zart.settings import Settings, load_settings
from zart.worker import Worker

#: A worker counts as alive (for starts by name) if it heartbeated this recently.
LIVE_WORKER_WINDOW = timedelta(minutes=2)


class SchedulerBase:
    """What every part of the control plane shares: the engine (owned or borrowed), the clock,
    the runtime, the in-process workers. :class:`DurableScheduler` is the class to use."""

    def __init__(
        self,
        url: str | None = None,
        *,
        engine: AsyncEngine | None = None,
        schema: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
        max_payload_bytes: int | None = None,
        inline_wait_limit: timedelta | float | str | None = None,
        settings: Settings | None = None,
    ) -> None:
        if url is not None and engine is not None:
            raise ConfigurationError("give a database URL or an engine, not both")
        self.settings = load_settings(
            settings,
            database_url=url,
            database_schema=schema,
            max_payload_bytes=max_payload_bytes,
            inline_wait_limit=inline_wait_limit,
        )
        schema = self.settings.database_schema
        self._owns_engine = engine is None
        base = engine if engine is not None else create_engine(self.settings.database_url)
        self._base_engine = base
        self.schema = schema
        explain_errors(base)
        self.engine = with_schema(base, schema)
        self.clock = clock
        self.runtime = Runtime(
            self.engine,
            clock,
            self.settings.max_payload_bytes,
            self.settings.inline_wait_limit,
            channel=wakeups.channel_for(schema),
        )
        #: Where Zart's operations run on this engine (built once, with the runtime).
        self.store = self.runtime.store
        self._workers: list[Worker] = []
        # wait() callers, woken when an in-process worker ends a run of their execution
        self._waiters: dict[str, list[asyncio.Future[ExecutionRecord | None]]] = {}
        # Callers' sessions/connections whose commit will wake this scheduler's workers.
        self._wake_on_commit: weakref.WeakSet[Session | Connection] = weakref.WeakSet()
        self._closed = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self, *, dispose_engine: bool | None = None) -> None:
        """Stop in-process workers and release the engine: if this scheduler created it
        (``dispose_engine=None``), or whenever ``dispose_engine`` is true (a process that
        ends with the scheduler, such as ``zart worker --app``, releases the application's
        engine too)."""
        if self._closed:
            return
        self._closed = True
        for worker in list(self._workers):
            await worker.stop()
        if self._owns_engine if dispose_engine is None else dispose_engine:
            await self._base_engine.dispose()

    async def migrate(self) -> None:
        """Create or upgrade Zart's tables (the same as ``zart db upgrade``)."""
        await upgrade(self._base_engine, schema=self.schema)

    async def _live_task_names(self) -> set[str]:
        async with self.store.reading() as db:
            return await db.run(
                workers_repo.live_task_names, seen_since=self.clock.now() - LIVE_WORKER_WINDOW
            )

    @property
    def workers(self) -> tuple[Worker, ...]:
        """The workers this scheduler runs in this process (``run_worker`` blocks)."""
        return tuple(self._workers)
