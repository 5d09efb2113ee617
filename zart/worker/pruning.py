"""Retention: deleting finished executions once they are old enough.

:func:`prune` is the one body, used by ``DurableScheduler.prune`` (``zart prune``, the HTTP
API) and by the worker's background :class:`PruneLoop`. It deletes in small batches, one
transaction each, oldest first: a batch holds its rows' locks only for its own short
transaction, so claims and checkpoints are never held up for long, and on PostgreSQL two
pruners skip each other's locked rows (``FOR UPDATE SKIP LOCKED``) instead of waiting or
deleting the same rows; on SQLite the single write lock orders them. Deleting an execution
deletes its runs, steps, attempts, timers and events with it (``ON DELETE CASCADE``).

:func:`prune_firings` bounds the schedules' firing history the same way: it outlives a
removed schedule, and goes once older than the worker's ``schedule_history`` (30 days).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import datetime, timedelta

from zart.clock import Clock
from zart.logs import log
from zart.models import ExecutionStatus
from zart.outages import is_transient
from zart.repositories import retention as retention_repo
from zart.repositories import schedules as schedules_repo
from zart.repositories.executors import ConnectionExecutor
from zart.repositories.retention import FINISHED
from zart.repositories.store import Store
from zart.runtime.registry import retentions as registry_retentions
from zart.worker.settings import WorkerSettings

#: Executions deleted per transaction by a worker's background pruning.
PRUNE_BATCH = 100


async def prune(
    store: Store,
    before: datetime,
    *,
    statuses: Collection[ExecutionStatus] = FINISHED,
    task_name: str | None = None,
    except_tasks: Collection[str] = (),
    batch: int = PRUNE_BATCH,
) -> int:
    """Delete every finished execution (in ``statuses``) that finished before ``before``
    (only ``task_name``'s, or none of ``except_tasks``'), ``batch`` per transaction; how many
    were deleted."""

    async def one_batch(db: ConnectionExecutor) -> int:
        ids = await db.run(
            retention_repo.prune_finished,
            before=before,
            statuses=statuses,
            task_name=task_name,
            except_tasks=except_tasks,
            limit=batch,
        )
        return len(ids)

    return await _in_batches(store, one_batch, batch)


async def prune_firings(store: Store, before: datetime, *, batch: int = PRUNE_BATCH) -> int:
    """Delete the schedules' firings older than ``before`` (each existing schedule's latest
    that started an execution stays), ``batch`` per transaction; how many were deleted."""

    async def one_batch(db: ConnectionExecutor) -> int:
        return await db.run(schedules_repo.prune_firings, before=before, limit=batch)

    return await _in_batches(store, one_batch, batch)


async def _in_batches(
    store: Store, one_batch: Callable[[ConnectionExecutor], Awaitable[int]], batch: int
) -> int:
    """Run ``one_batch`` (how many rows it deleted), one transaction each, until one deletes
    fewer than ``batch``; the total."""
    deleted = 0
    while True:
        async with store.transaction() as db:
            count = await one_batch(db)
        deleted += count
        if count < batch:
            return deleted
        await asyncio.sleep(0)  # let the worker's other work in between batches


class PruneLoop:
    """A worker's background pruning: every ``prune_interval`` seconds, the finished
    executions of each task with a ``retention`` of its own (``retentions()``: the handlers
    registered in this process), then those of every other task past the worker's
    ``retention`` (if it has one); and on a worker that fires schedules (``firings``), the
    firings older than ``schedule_history``."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: WorkerSettings,
        worker_id: str,
        *,
        firings: bool = False,
        retentions: Callable[[], Mapping[str, timedelta]] = registry_retentions,
    ) -> None:
        self.store = store
        self.clock = clock
        self.retention = settings.kept_for
        self.history = settings.history_kept_for if firings else None
        self.interval = settings.prune_interval
        self.retentions = retentions
        self.worker_id = worker_id

    @property
    def needed(self) -> bool:
        return self.retention is not None or self.history is not None or bool(self.retentions())

    async def tick(self) -> int:
        """One pass; how many executions it deleted."""
        now = self.clock.now()
        own = dict(self.retentions())
        deleted = 0
        for task_name, kept in sorted(own.items()):
            deleted += await prune(self.store, now - kept, task_name=task_name)
        if self.retention is not None:
            deleted += await prune(self.store, now - self.retention, except_tasks=own)
        if deleted:
            log(
                "executions_pruned",
                f"pruned {deleted} finished execution(s)",
                worker_id=self.worker_id,
                deleted=deleted,
            )
        if self.history is not None:
            firings = await prune_firings(self.store, now - self.history)
            if firings:
                log(
                    "firings_pruned",
                    f"pruned {firings} schedule firing(s) older than {self.history}",
                    worker_id=self.worker_id,
                    deleted=firings,
                )
        return deleted

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.tick()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log("prune_failed", f"pruning failed: {exc}", level=30)
            try:
                async with asyncio.timeout(self.interval):
                    await stopping.wait()
            except TimeoutError:
                pass
