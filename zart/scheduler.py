"""``DurableScheduler``: the control plane an application holds.

It starts executions (idempotently), reports on them, waits for them, cancels them, and can run
an in-process worker. It owns its engine when given a URL and borrows it when given one.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from zart.clock import SYSTEM_CLOCK, Clock
from zart.database import DEFAULT_DATABASE_URL, create_engine, read_only, with_schema
from zart.durations import parse_duration
from zart.errors import (
    ConfigurationError,
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionNotFound,
    InvalidPayload,
    ScheduleNotFound,
    UnknownTask,
    WaitTimedOut,
)
from zart.migrations import upgrade
from zart.models import CatchupPolicy, ExecutionStatus, OverlapPolicy
from zart.repositories import events as events_repo
from zart.repositories import executions as executions_repo
from zart.repositories import schedules as schedules_repo
from zart.repositories import wakeups
from zart.repositories import workers as workers_repo
from zart.repositories.executions import ExecutionFilter, SortField
from zart.repositories.records import ExecutionPage, ExecutionRecord, ScheduleRecord
from zart.runtime.execution import DEFAULT_INLINE_WAIT_LIMIT, DEFAULT_MAX_PAYLOAD_BYTES, Runtime
from zart.runtime.registry import DurableHandler, find_handler, registered_names
from zart.schedules.cron import parse_cron
from zart.schedules.plans import DEFAULT_CATCHUP, DEFAULT_OVERLAP, ScheduleSpec, check_name
from zart.serialization import check_size, to_json
from zart.worker import Worker, WorkerSettings

#: A worker counts as alive (for starts by name) if it heartbeated this recently.
LIVE_WORKER_WINDOW = timedelta(minutes=2)

Target = DurableHandler[..., Any] | str


class DurableScheduler:
    """Start, inspect, wait for and cancel durable executions; run workers in-process.

    ``DurableScheduler("postgresql+asyncpg://...")`` or ``DurableScheduler(engine=app_engine)``;
    the default database is the embedded SQLite file ``zart.db``. Use it as an async context
    manager, or call :meth:`close` when done. Waits (sleeps, retry back-offs) up to
    ``inline_wait_limit`` stay in memory on the worker; longer ones suspend the execution.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        engine: AsyncEngine | None = None,
        schema: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        inline_wait_limit: timedelta | float | str = DEFAULT_INLINE_WAIT_LIMIT,
    ) -> None:
        if url is not None and engine is not None:
            raise ConfigurationError("give a database URL or an engine, not both")
        self._owns_engine = engine is None
        base = engine if engine is not None else create_engine(url or DEFAULT_DATABASE_URL)
        self._base_engine = base
        self.schema = schema
        self.engine = with_schema(base, schema)
        self._reads = read_only(self.engine)
        self.clock = clock
        self.runtime = Runtime(
            self.engine,
            clock,
            max_payload_bytes,
            parse_duration(inline_wait_limit, name="inline_wait_limit"),
            channel=wakeups.channel_for(schema),
        )
        self._workers: list[Worker] = []
        # wait() callers, woken when an in-process worker ends a run of their execution
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
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

    async def close(self) -> None:
        """Stop in-process workers and release the engine (if this scheduler created it)."""
        if self._closed:
            return
        self._closed = True
        for worker in list(self._workers):
            await worker.stop()
        if self._owns_engine:
            await self._base_engine.dispose()

    async def migrate(self) -> None:
        """Create or upgrade Zart's tables (the same as ``zart db upgrade``)."""
        await upgrade(self._base_engine, schema=self.schema)

    # -- starting ---------------------------------------------------------------------------

    async def start(
        self,
        handler: Target,
        payload: Any = None,
        *,
        execution_id: str | None = None,
        session: AsyncSession | AsyncConnection | None = None,
    ) -> str:
        """Start an execution of ``handler`` (a durable handler or its task name) and return
        its id.

        Idempotent by ``execution_id``: an existing execution with the same task and payload is
        returned and nothing new starts; a different task or payload raises
        :class:`~zart.ExecutionAlreadyExists`. With ``session=`` the execution row is written
        in the caller's transaction and is committed (or rolled back) with it.
        """
        task_name, stored = await self._validated(handler, payload)
        if execution_id is not None and (not isinstance(execution_id, str) or not execution_id):
            raise InvalidPayload("execution_id must be a non-empty string")
        execution_id = execution_id or str(uuid.uuid4())
        target = find_handler(task_name)
        now = self.clock.now()
        deadline = now + target.timeout if target is not None and target.timeout else None
        async with _transaction(self.engine, session) as conn:
            created = await executions_repo.create_execution(
                conn,
                execution_id=execution_id,
                task_name=task_name,
                payload=stored,
                now=now,
                deadline_at=deadline,
            )
            if created.created:  # sent at commit: the caller's, with session=
                await wakeups.notify(conn, self.runtime.channel, task_name)
        if created.created and session is None:
            for worker in self._workers:
                worker.wake()
        return created.execution.execution_id

    async def _validated(self, handler: Target, payload: Any) -> tuple[str, Any]:
        if isinstance(handler, DurableHandler):
            target: DurableHandler[..., Any] | None = handler
            task_name = handler.name
        elif isinstance(handler, str):
            task_name = handler
            target = find_handler(task_name)
            if target is None and task_name not in await self._live_task_names():
                raise UnknownTask(task_name)
        else:
            raise ConfigurationError(
                f"start() takes a durable handler or a task name, not {type(handler).__name__}"
            )
        # Started by name for a handler only a remote worker knows: the worker validates it.
        stored = payload if target is None else target.payload_from(payload)
        check_size(stored, self.runtime.max_payload_bytes, name="payload")
        return task_name, stored

    async def _live_task_names(self) -> set[str]:
        async with self._reads.connect() as conn:
            return await workers_repo.live_task_names(
                conn, seen_since=self.clock.now() - LIVE_WORKER_WINDOW
            )

    # -- reading ----------------------------------------------------------------------------

    async def status(self, execution_id: str) -> ExecutionRecord:
        """The execution as stored; :class:`~zart.ExecutionNotFound` when there is none."""
        async with self._reads.connect() as conn:
            record = await executions_repo.get_execution(conn, execution_id)
        if record is None:
            raise ExecutionNotFound(execution_id)
        return record

    async def list_executions(
        self,
        *,
        status: ExecutionStatus | str | None = None,
        task_name: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        search: str | None = None,
        sort_by: SortField = "created_at",
        descending: bool = True,
        limit: int = 20,
        offset: int = 0,
    ) -> ExecutionPage:
        """A page of executions, newest first by default, with the total number of matches."""
        if not 1 <= limit <= 1000:
            raise InvalidPayload(f"limit must be between 1 and 1000, not {limit}")
        if offset < 0:
            raise InvalidPayload(f"offset must not be negative, not {offset}")
        try:
            wanted = None if status is None else ExecutionStatus(status)
        except ValueError:
            choices = ", ".join(s.value for s in ExecutionStatus)
            raise InvalidPayload(f"unknown status {status!r}; one of: {choices}") from None
        where = ExecutionFilter(wanted, task_name, created_from, created_to, search)
        async with self._reads.connect() as conn:
            return await executions_repo.list_executions(
                conn, where, sort_by=sort_by, descending=descending, limit=limit, offset=offset
            )

    async def wait(self, execution_id: str, timeout: float | None = 30.0) -> Any:
        """Wait for the execution to finish and return the handler's result.

        The result is rebuilt with the handler's return annotation when the handler is
        registered in this process (plain JSON otherwise). Raises
        :class:`~zart.ExecutionFailed`, :class:`~zart.ExecutionCancelled`, or
        :class:`~zart.WaitTimedOut` (the execution keeps running).
        """
        record = await self.wait_finished(execution_id, timeout)
        if record.status is ExecutionStatus.FAILED:
            raise ExecutionFailed(execution_id, record.error)
        if record.status is ExecutionStatus.CANCELLED:
            raise ExecutionCancelled(execution_id)
        handler = find_handler(record.task_name)
        return record.result if handler is None else handler.result_from_json(record.result)

    async def wait_finished(
        self, execution_id: str, timeout: float | None = 30.0
    ) -> ExecutionRecord:
        """Wait until the execution is completed, failed or cancelled and return its record.

        A worker of this scheduler wakes the wait the moment it ends a run; executions running
        elsewhere are polled (every 5 ms at first, backing off to 250 ms).
        """
        give_up = None if timeout is None else time.monotonic() + timeout
        delay = 0.005
        loop = asyncio.get_running_loop()
        while True:
            ended: asyncio.Future[None] = loop.create_future()
            waiters = self._waiters.setdefault(execution_id, [])
            waiters.append(ended)  # before reading: an end in between is not missed
            try:
                record = await self.status(execution_id)
                if record.is_terminal:
                    return record
                if give_up is not None and time.monotonic() >= give_up:
                    raise WaitTimedOut(execution_id, timeout or 0.0)
                pause = delay if give_up is None else min(delay, give_up - time.monotonic())
                await asyncio.wait([ended], timeout=max(pause, 0.0))
            finally:
                if ended in waiters:
                    waiters.remove(ended)
                if not waiters:
                    self._waiters.pop(execution_id, None)
            delay = min(delay * 2, 0.25)

    def _run_ended(self, execution_id: str) -> None:
        for ended in self._waiters.get(execution_id, []):
            if not ended.done():
                ended.set_result(None)

    # -- changing ---------------------------------------------------------------------------

    async def cancel(self, execution_id: str) -> bool:
        """Cancel an unfinished execution: True if it was cancelled now, False if it had
        already finished. Unknown ids raise :class:`~zart.ExecutionNotFound`."""
        async with self.engine.begin() as conn:
            cancelled = await executions_repo.cancel_execution(
                conn, execution_id, now=self.clock.now()
            )
            if (
                cancelled is None
                and await executions_repo.get_execution(conn, execution_id) is None
            ):
                raise ExecutionNotFound(execution_id)
        if cancelled is not None:
            for worker in self._workers:
                worker.abort(execution_id)
        return cancelled is not None

    async def offer_event(
        self,
        execution_id: str,
        name: str,
        payload: Any = None,
        *,
        session: AsyncSession | AsyncConnection | None = None,
    ) -> None:
        """Deliver the event ``name`` to an execution; a ``zart.wait_for_event(name)`` there
        returns ``payload`` (JSON, a pydantic model or a dataclass). The event is stored and the
        execution woken in one transaction (the caller's, with ``session=``); an event offered
        before the execution reaches its wait is kept for it.

        Raises :class:`~zart.ExecutionNotFound`, :class:`~zart.EventNotAccepted` (finished or
        cancelled) or :class:`~zart.EventAlreadyDelivered`, storing nothing.
        """
        if not isinstance(name, str) or not name:
            raise InvalidPayload("an event needs a non-empty name")
        data = to_json(payload, name="event payload")
        check_size(data, self.runtime.max_payload_bytes, name="event payload")
        async with _transaction(self.engine, session) as conn:
            delivery = await events_repo.deliver_event(
                conn, execution_id=execution_id, name=name, payload=data, now=self.clock.now()
            )
            if delivery.woke:
                await wakeups.notify(conn, self.runtime.channel, delivery.task_name)
        if session is None:
            for worker in self._workers:
                worker.wake()

    # -- workers ----------------------------------------------------------------------------

    @property
    def workers(self) -> tuple[Worker, ...]:
        """The workers this scheduler runs in this process (``run_worker`` blocks)."""
        return tuple(self._workers)

    @asynccontextmanager
    async def run_worker(
        self,
        concurrency: int = 64,
        lease_timeout: float = 30.0,
        *,
        task_names: list[str] | None = None,
        poll_interval: float = 0.5,
        heartbeat_interval: float | None = None,
        shutdown_timeout: float = 30.0,
    ) -> AsyncIterator[Worker]:
        """Run a worker in this process while the block runs (apps, tests, scripts).

        It runs every durable handler registered in this process, or ``task_names``.
        """
        settings = WorkerSettings(
            concurrency=concurrency,
            lease_timeout=lease_timeout,
            heartbeat_interval=heartbeat_interval,
            poll_interval=poll_interval,
            shutdown_timeout=shutdown_timeout,
        )
        worker = Worker(
            self.runtime, task_names or registered_names(), settings, on_finished=self._run_ended
        )
        await worker.start()
        self._workers.append(worker)
        try:
            yield worker
        finally:
            self._workers.remove(worker)
            await worker.stop()

    # -- schedules --------------------------------------------------------------------------

    async def add_schedule(
        self,
        name: str,
        task: Target,
        cron: str,
        *,
        timezone: str = "UTC",
        payload: Any = None,
        overlap: OverlapPolicy | str = DEFAULT_OVERLAP,
        catchup: CatchupPolicy | str = DEFAULT_CATCHUP,
    ) -> ScheduleRecord:
        """Start ``task`` (a durable handler or its task name) on the cron schedule ``cron``
        (5 fields, or 6 with seconds first) read in ``timezone``, each execution with
        ``payload``; stored under ``name`` and fired by every running worker, exactly once per
        fire time.

        Adding an existing name updates it in place (idempotent, so an application may call
        it at every start): a paused schedule stays paused, and an unchanged rule keeps its
        next fire time. Raises :class:`~zart.InvalidSchedule` (expression, time zone, policy,
        name), :class:`~zart.UnknownTask` or :class:`~zart.InvalidPayload`, storing nothing.
        """
        name = check_name(name)
        spec = ScheduleSpec.create(cron, timezone=timezone, overlap=overlap, catchup=catchup)
        task_name, stored = await self._validated(task, payload)
        now = self.clock.now()
        async with self.engine.begin() as conn:
            return await schedules_repo.save_schedule(
                conn,
                name=name,
                task_name=task_name,
                cron=spec.cron.expression,
                timezone=spec.cron.timezone,
                payload=stored,
                overlap=spec.overlap,
                catchup=spec.catchup,
                next_fire_at=spec.cron.next_after(now),
                now=now,
            )

    async def get_schedule(self, name: str) -> ScheduleRecord:
        """The schedule ``name``; :class:`~zart.ScheduleNotFound` when there is none."""
        async with self._reads.connect() as conn:
            record = await schedules_repo.get_schedule(conn, name)
        if record is None:
            raise ScheduleNotFound(name)
        return record

    async def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule (declared on handlers and added at run time), by name."""
        async with self._reads.connect() as conn:
            return await schedules_repo.list_schedules(conn)

    async def pause_schedule(self, name: str) -> ScheduleRecord:
        """Stop firing ``name`` until :meth:`resume_schedule` (running executions go on).
        Idempotent; :class:`~zart.ScheduleNotFound` when there is no such schedule."""
        async with self.engine.begin() as conn:
            record = await schedules_repo.pause_schedule(conn, name, now=self.clock.now())
        if record is None:
            raise ScheduleNotFound(name)
        return record

    async def resume_schedule(self, name: str) -> ScheduleRecord:
        """Fire ``name`` again, from its next fire time after now: times that passed while
        it was paused are not caught up. Idempotent; :class:`~zart.ScheduleNotFound`."""
        now = self.clock.now()
        async with self.engine.begin() as conn:
            current = await schedules_repo.get_schedule(conn, name, lock=True)
            if current is None:
                raise ScheduleNotFound(name)
            following = parse_cron(current.cron, current.timezone).next_after(now)
            record = await schedules_repo.resume_schedule(
                conn, name, next_fire_at=following, now=now
            )
        assert record is not None  # the row is locked (or SQLite's writer lock is held)
        return record

    async def remove_schedule(self, name: str) -> None:
        """Delete ``name`` and its firing history; the executions it started are kept. A
        schedule declared on a handler comes back when a worker running it starts: remove
        ``schedule=`` from the decorator too. :class:`~zart.ScheduleNotFound` when unknown."""
        async with self.engine.begin() as conn:
            removed = await schedules_repo.remove_schedule(conn, name)
        if not removed:
            raise ScheduleNotFound(name)


@asynccontextmanager
async def _transaction(
    engine: AsyncEngine, session: AsyncSession | AsyncConnection | None
) -> AsyncIterator[AsyncConnection]:
    """The caller's transaction when a session is given (never committed here), else a
    transaction of our own committed on exit."""
    if session is None:
        async with engine.begin() as conn:
            yield conn
    elif isinstance(session, AsyncSession):
        yield await session.connection()
    elif isinstance(session, AsyncConnection):
        yield session
    else:
        raise ConfigurationError(
            f"session= takes an AsyncSession or AsyncConnection, not {type(session).__name__}"
        )
