"""``DurableScheduler``: the control plane an application holds.

It starts executions (idempotently), reports on them, waits for them, cancels them, delivers
events, and runs in-process workers; the admin operations (:mod:`.admin`) and cron schedules
(:mod:`.schedules`) are its other parts. It owns its engine when given a URL and borrows it
when given one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from zart import metrics, tracing
from zart.errors import (
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionNotFound,
    InvalidPayload,
    WaitTimedOut,
)
from zart.models import ExecutionStatus
from zart.models.names import check_path_segment
from zart.models.queues import Queue
from zart.repositories import children as children_repo
from zart.repositories import events as events_repo
from zart.repositories import executions as executions_repo
from zart.repositories.executions import SortField
from zart.repositories.records import (
    ClaimedExecution,
    CreatedExecution,
    ExecutionPage,
    ExecutionRecord,
    Lease,
)
from zart.runtime.registry import (
    DurableHandler,
    ExecutionId,
    compensated_names,
    find_handler,
    registered_names,
)
from zart.scheduler.base import LIVE_WORKER_WINDOW
from zart.scheduler.bulk import BulkOperations, execution_filter
from zart.scheduler.inspection import InspectionOperations
from zart.scheduler.messages import MessageOperations
from zart.scheduler.polling import PollBackoff
from zart.scheduler.queues import QueueOperations
from zart.scheduler.schedules import ScheduleOperations
from zart.scheduler.starts import (
    StartRequest,
    Target,
    create_claimed,
    start_operation,
    start_request,
    sync_target,
)
from zart.scheduler.streams import StreamOperations
from zart.scheduler.sync import SyncScheduler
from zart.scheduler.versioning import VersioningOperations
from zart.serialization import check_size, to_json
from zart.worker import Worker

In = TypeVar("In")
R = TypeVar("R")

#: Seconds between status reads while a worker of this scheduler runs the awaited execution.
RECHECK_RUNNING_HERE = 1.0


class DurableScheduler(
    VersioningOperations,
    BulkOperations,
    ScheduleOperations,
    QueueOperations,
    InspectionOperations,
    StreamOperations,
    MessageOperations,
):
    """Start, inspect, wait for and cancel durable executions; run workers in-process.

    ``DurableScheduler("postgresql+asyncpg://...")`` or ``DurableScheduler(engine=app_engine)``;
    the default database is the embedded SQLite file ``zart.db``. Use it as an async context
    manager, or call :meth:`close` when done. Waits (sleeps, retry back-offs) up to
    ``inline_wait_limit`` stay in memory on the worker; longer ones suspend the execution.
    """

    # -- starting ---------------------------------------------------------------------------

    @overload
    async def start(
        self,
        handler: DurableHandler[[In], R],
        payload: In,
        *,
        execution_id: str | None = None,
        session: AsyncSession | AsyncConnection | None = None,
        tags: Mapping[str, str] | None = None,
        queue: Queue | str | None = None,
        partition_key: str | None = None,
        priority: int = 0,
        singleton_key: str | None = None,
        debounce: timedelta | str | float | None = None,
        debounce_key: str | None = None,
    ) -> ExecutionId[R]: ...
    @overload
    async def start(
        self,
        handler: DurableHandler[[], R],
        payload: None = None,
        *,
        execution_id: str | None = None,
        session: AsyncSession | AsyncConnection | None = None,
        tags: Mapping[str, str] | None = None,
        queue: Queue | str | None = None,
        partition_key: str | None = None,
        priority: int = 0,
        singleton_key: str | None = None,
        debounce: timedelta | str | float | None = None,
        debounce_key: str | None = None,
    ) -> ExecutionId[R]: ...
    @overload
    async def start(
        self,
        handler: str,
        payload: Any = None,
        *,
        execution_id: str | None = None,
        session: AsyncSession | AsyncConnection | None = None,
        tags: Mapping[str, str] | None = None,
        queue: Queue | str | None = None,
        partition_key: str | None = None,
        priority: int = 0,
        singleton_key: str | None = None,
        debounce: timedelta | str | float | None = None,
        debounce_key: str | None = None,
    ) -> ExecutionId[Any]: ...
    async def start(
        self,
        handler: Target,
        payload: Any = None,
        *,
        execution_id: str | None = None,
        session: AsyncSession | AsyncConnection | None = None,
        tags: Mapping[str, str] | None = None,
        queue: Queue | str | None = None,
        partition_key: str | None = None,
        priority: int = 0,
        singleton_key: str | None = None,
        debounce: timedelta | str | float | None = None,
        debounce_key: str | None = None,
    ) -> ExecutionId[Any]:
        """Start an execution of ``handler`` (a durable handler or its task name) and return
        its id.

        Idempotent by ``execution_id``: an existing execution with the same task and payload is
        returned and nothing new starts; a different task or payload raises
        :class:`~zart.ExecutionAlreadyExists`. With ``session=`` (the application's
        ``AsyncSession`` or ``AsyncConnection``) the execution row is written in the caller's
        transaction and never committed here: roll it back and nothing starts; commit it and
        workers are woken at once (NOTIFY on PostgreSQL, directly for this scheduler's
        in-process workers). On PostgreSQL Zart's statements run under a savepoint, so an
        error here (a duplicate id with another payload) leaves the caller's transaction
        usable. See ``docs/transactions.md``.

        The id returned is an :class:`~zart.ExecutionId` (a ``str``) typed with the handler's
        result, and the payload is typed as the handler's input: a type checker catches a
        wrong input and a misused result (a start by task name is typed ``Any``).

        ``tags`` (tag keys to strings, e.g. ``{"tenant": "acme"}``) are stored with the
        execution: ``zart.context().tags`` in it, ``list_executions(tags=...)`` to find it.

        ``queue`` (default: the handler's, else ``"default"``), ``partition_key`` and
        ``priority`` (higher first) place it in a queue whose limits hold across workers
        (``docs/queues.md``); bad ones raise :class:`~zart.InvalidQueue`.

        ``singleton_key``: at most one unfinished execution of the task per key; a start
        while one holds the key returns that one's id and starts nothing. ``debounce`` (a
        window, ``"30s"``) with ``debounce_key`` (default: one window per task): the
        execution runs once, the window after the last start, with the last start's payload;
        every start in the window returns its id (``docs/queues.md``).
        """
        with tracing.start_span(handler.name if isinstance(handler, DurableHandler) else handler):
            request = await start_request(
                handler,
                payload,
                execution_id,
                max_payload_bytes=self.runtime.max_payload_bytes,
                live_task_names=self._live_task_names,
                tags=tags,
                queue=queue,
                partition_key=partition_key,
                priority=priority,
                singleton_key=singleton_key,
                debounce=debounce,
                debounce_key=debounce_key,
            )
            here = None if session is not None or request.keyed else self._reserve(request)
            if here is not None:
                return ExecutionId(await self._start_here(request, *here))
            operation, arguments = start_operation(request, self.clock.now(), self.runtime.channel)
            async with self.store.within(session) as db:
                done = await db.run(operation, **arguments)
        if done.created:
            metrics.execution_started(request.task_name)
            self._wake_workers(session)
        return ExecutionId(done.execution.execution_id)

    def _reserve(self, request: StartRequest) -> tuple[Worker, Lease] | None:
        """An in-process worker that runs the task and has a slot free, with the lease the
        start inserts the execution under."""
        for worker in self._workers:
            lease = worker.reserve(request.task_name, request.execution_id, request.queue)
            if lease is not None:
                return worker, lease
        return None

    async def _start_here(self, request: StartRequest, worker: Worker, lease: Lease) -> str:
        """Start an execution already claimed by ``worker`` of this process: one commit, on
        the worker's own connections, and the run begins at once, with no claim and no
        wake-up. Its lease fences it exactly like a claim's: if this process dies, the lease
        expires and another worker takes it over."""
        insert = asyncio.ensure_future(create_claimed(self.runtime, request, lease))

        def hand_over(done: asyncio.Future[CreatedExecution]) -> None:
            created = None if done.cancelled() or done.exception() else done.result()
            if created is None or not created.created:
                worker.adopt(None)
            else:
                worker.adopt(ClaimedExecution(lease, created.execution))

        insert.add_done_callback(hand_over)
        # Shielded: a caller cancelled meanwhile does not undo an insert that may commit; what
        # it started runs all the same.
        created = await asyncio.shield(insert)
        if created.created:
            metrics.execution_started(request.task_name)
        return created.execution.execution_id

    def _wake_workers(self, session: AsyncSession | AsyncConnection | None) -> None:
        """Wake in-process workers now (our own transaction has committed), or when the
        caller's transaction commits."""
        if session is None:
            for worker in self._workers:
                worker.wake()
            return
        target = sync_target(session)
        if target in self._wake_on_commit:
            return
        self._wake_on_commit.add(target)

        def ended(*_: Any) -> None:
            self._wake_on_commit.discard(target)

        def committed(*_: Any) -> None:
            if target in self._wake_on_commit:
                ended()
                for worker in self._workers:
                    worker.wake()

        # Session: after_commit runs once the database committed. A Connection only offers
        # "commit", just before it: a claim woken by it waits for the commit all the same on
        # SQLite (the caller holds the single write lock until then), and on PostgreSQL a
        # claim that ran too early is woken again by the NOTIFY delivered at commit.
        if isinstance(target, Session):
            commit, rollback = "after_commit", "after_rollback"
        else:
            commit, rollback = "commit", "rollback"
        event.listen(target, commit, committed, once=True)
        event.listen(target, rollback, ended, once=True)

    # -- reading ----------------------------------------------------------------------------

    async def status(self, execution_id: str) -> ExecutionRecord:
        """The execution as stored; :class:`~zart.ExecutionNotFound` when there is none."""
        async with self.store.reading() as db:
            record = await db.run(executions_repo.get_execution, execution_id)
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
        tags: Mapping[str, str] | None = None,
        sort_by: SortField = "created_at",
        descending: bool = True,
        limit: int = 20,
        offset: int = 0,
    ) -> ExecutionPage:
        """A page of executions, newest first by default, with the total number of matches;
        with ``tags``, only those carrying every one of them."""
        if not 1 <= limit <= 1000:
            raise InvalidPayload(f"limit must be between 1 and 1000, not {limit}")
        if offset < 0:
            raise InvalidPayload(f"offset must not be negative, not {offset}")
        where = execution_filter(
            status=status,
            task_name=task_name,
            created_from=created_from,
            created_to=created_to,
            search=search,
            tags=tags,
        )
        async with self.store.reading() as db:
            return await db.run(
                executions_repo.list_executions,
                where,
                sort_by=sort_by,
                descending=descending,
                limit=limit,
                offset=offset,
            )

    async def stats(self) -> dict[ExecutionStatus, int]:
        """How many executions are in each status (every status present, zero when none)."""
        async with self.store.reading() as db:
            return await db.run(executions_repo.count_executions_by_status)

    @overload
    async def wait(self, execution_id: ExecutionId[R], timeout: float | None = 30.0) -> R: ...
    @overload
    async def wait(self, execution_id: str, timeout: float | None = 30.0) -> Any: ...
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

        While a worker of this scheduler runs the execution, the wait reads nothing: the worker
        hands over the finished record the moment it ends the run (the status is re-read once
        a second all the same, for a cancel from elsewhere). Executions running elsewhere are
        polled (every 5 ms at first, backing off to 250 ms).
        """
        give_up = None if timeout is None else time.monotonic() + timeout
        backoff = PollBackoff()
        read_at = time.monotonic()  # the start's own write counts as the first look
        loop = asyncio.get_running_loop()
        while True:
            ended: asyncio.Future[ExecutionRecord | None] = loop.create_future()
            waiters = self._waiters.setdefault(execution_id, [])
            waiters.append(ended)  # before reading: an end in between is not missed
            try:
                here = self._runs_here(execution_id)
                if not here or time.monotonic() - read_at >= RECHECK_RUNNING_HERE:
                    read_at = time.monotonic()
                    record = await self.status(execution_id)
                    if record.is_terminal:
                        return record
                if give_up is not None and time.monotonic() >= give_up:
                    raise WaitTimedOut(execution_id, timeout or 0.0)
                pause = RECHECK_RUNNING_HERE if here else backoff.next()
                if give_up is not None:
                    pause = min(pause, give_up - time.monotonic())
                await asyncio.wait([ended], timeout=max(pause, 0.0))
                if ended.done() and (final := ended.result()) is not None and final.is_terminal:
                    return final
            finally:
                if ended in waiters:
                    waiters.remove(ended)
                if not waiters:
                    self._waiters.pop(execution_id, None)

    def _runs_here(self, execution_id: str) -> bool:
        return any(worker.runs(execution_id) for worker in self._workers)

    def _run_ended(self, execution_id: str, record: ExecutionRecord | None) -> None:
        """A worker of this scheduler ended a run of ``execution_id``: finished (``record``
        terminal), suspended, or let go of (``None``)."""
        for ended in self._waiters.get(execution_id, []):
            if not ended.done():
                ended.set_result(record)
        self._streams_changed(execution_id)

    # -- changing ---------------------------------------------------------------------------

    async def cancel(self, execution_id: str) -> bool:
        """Cancel an unfinished execution: True if it was cancelled now, False if it had
        already finished. Unknown ids raise :class:`~zart.ExecutionNotFound`.

        If a worker had begun it and its task declares ``on_cancel``, its compensation starts
        in the same transaction (``status(execution_id).compensation_id`` names it)."""
        now = self.clock.now()
        async with self.store.transaction() as db:
            cancelled = await db.run(
                children_repo.cancel_family,
                execution_id,
                now=now,
                compensated=compensated_names(),
                seen_since=now - LIVE_WORKER_WINDOW,
                channel=self.runtime.channel,
            )
            if (
                cancelled is None
                and await db.run(executions_repo.get_execution, execution_id) is None
            ):
                raise ExecutionNotFound(execution_id)
        if cancelled is not None:
            metrics.execution_finished(cancelled.task_name, cancelled.status.value)
            for worker in self._workers:
                worker.abort(execution_id)
            if cancelled.compensation_id is not None:
                self._wake_workers(None)
        return cancelled is not None

    async def offer_event(
        self,
        execution_id: str,
        name: str,
        payload: Any = None,
        *,
        session: AsyncSession | AsyncConnection | None = None,
        sender: str | None = None,
    ) -> None:
        """Deliver the event ``name`` to an execution; a ``zart.wait_for_event(name)`` there
        returns ``payload`` (JSON, a pydantic model or a dataclass). The event is stored and the
        execution woken in one transaction (the caller's, with ``session=``); an event offered
        before the execution reaches its wait is kept for it. ``sender`` (who sent it, up to
        255 characters) is stored with it for ``zart show``.

        Raises :class:`~zart.ExecutionNotFound`, :class:`~zart.EventNotAccepted` (finished or
        cancelled) or :class:`~zart.EventAlreadyDelivered`, storing nothing.
        """
        check_path_segment(execution_id, "execution id")
        check_path_segment(name, "event name")
        if sender is not None and (
            not isinstance(sender, str) or not 0 < len(sender) <= 255 or "\x00" in sender
        ):
            raise InvalidPayload(
                "an event's sender must be a string of 1 to 255 characters without NUL"
            )
        data = to_json(payload, name="event payload")
        check_size(data, self.runtime.max_payload_bytes, name="event payload")
        async with self.store.within(session) as db:
            delivery = await db.run(
                events_repo.deliver_event,
                execution_id=execution_id,
                name=name,
                payload=data,
                now=self.clock.now(),
                sender=sender,
                channel=self.runtime.channel,
            )
        if delivery.woke:
            self._wake_workers(session)

    # -- synchronous callers ----------------------------------------------------------------

    def sync(self) -> SyncScheduler:
        """This scheduler behind blocking calls (``start``, ``status``, ``wait``,
        ``offer_event``, ``cancel``) for synchronous code; see :class:`~zart.SyncScheduler`.
        Call it outside any event loop, before the scheduler is used: from then on it belongs
        to the facade, which closes it."""
        return SyncScheduler(self)

    # -- workers ----------------------------------------------------------------------------

    @asynccontextmanager
    async def run_worker(
        self,
        concurrency: int | None = None,
        lease_timeout: float | None = None,
        *,
        task_names: list[str] | None = None,
        poll_interval: float | None = None,
        heartbeat_interval: float | None = None,
        shutdown_timeout: float | None = None,
        claim_ahead: float | None = None,
        claim_ahead_limit: int | None = None,
        max_claims: int | None = None,
        retention: timedelta | float | str | None = None,
        prune_interval: float | None = None,
        schedules: bool = True,
        queues: Iterable[str] | None = None,
    ) -> AsyncIterator[Worker]:
        """Run a worker in this process while the block runs (apps, tests, scripts).

        It runs every durable handler registered in this process, or ``task_names``. An
        option not given comes from the scheduler's :class:`~zart.Settings` (``ZART_*``;
        defaults: concurrency 64, lease_timeout 30 s, poll_interval 0.5 s, shutdown_timeout
        30 s). ``claim_ahead`` (seconds), ``claim_ahead_limit`` and ``max_claims`` (claims in
        a row that may end without a report before an execution fails as a crash loop, for
        handlers that set none; default 5): see :class:`WorkerSettings`. ``retention``
        (``"30d"``): the worker also deletes, every ``prune_interval`` seconds, the finished
        executions older than that of handlers without a ``retention`` of their own.
        ``schedules=False``: this worker neither stores the handlers' declared cron schedules
        nor fires any (``zart.testing`` fires them on request). ``queues``: claim only from
        these queues (``docs/queues.md``).
        """
        settings = self.settings.worker_settings(
            concurrency=concurrency,
            lease_timeout=lease_timeout,
            heartbeat_interval=heartbeat_interval,
            poll_interval=poll_interval,
            shutdown_timeout=shutdown_timeout,
            claim_ahead=claim_ahead,
            claim_ahead_limit=claim_ahead_limit,
            max_claims=max_claims,
            retention=retention,
            prune_interval=prune_interval,
            queues=None if queues is None else tuple(queues),
        )
        worker = Worker(
            self.runtime,
            task_names or registered_names(),
            settings,
            on_finished=self._run_ended,
            schedules=schedules,
        )
        await worker.start()
        self._workers.append(worker)
        try:
            yield worker
        finally:
            self._workers.remove(worker)
            await worker.stop()
