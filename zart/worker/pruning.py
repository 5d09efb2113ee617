"""Retention: deleting finished executions once they are old enough.

:func:`prune` is the one body, used by ``DurableScheduler.prune`` (``zart prune``, the HTTP
API) and by the worker's background :class:`PruneLoop`. It deletes in small batches, one
transaction each, oldest first: a batch holds its rows' locks only for its own short
transaction, so claims and checkpoints are never held up for long, and on PostgreSQL two
pruners skip each other's locked rows (``FOR UPDATE SKIP LOCKED``) instead of waiting or
deleting the same rows; on SQLite the single write lock orders them. Deleting an execution
deletes its runs, steps, attempts, timers and events with it (``ON DELETE CASCADE``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta

from zart.clock import Clock
from zart.logs import log
from zart.models import ExecutionStatus
from zart.outages import is_transient
from zart.repositories import retention as retention_repo
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
    deleted = 0
    while True:
        async with store.transaction() as db:
            ids = await db.run(
                retention_repo.prune_finished,
                before=before,
                statuses=statuses,
                task_name=task_name,
                except_tasks=except_tasks,
                limit=batch,
            )
        deleted += len(ids)
        if len(ids) < batch:
            return deleted
        await asyncio.sleep(0)  # let the worker's other work in between batches


class PruneLoop:
    """A worker's background pruning: every ``prune_interval`` seconds, the finished
    executions of each task with a ``retention`` of its own (``retentions()``: the handlers
    registered in this process), then those of every other task past the worker's
    ``retention`` (if it has one)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: WorkerSettings,
        worker_id: str,
        *,
        retentions: Callable[[], Mapping[str, timedelta]] = registry_retentions,
    ) -> None:
        self.store = store
        self.clock = clock
        self.retention = settings.kept_for
        self.interval = settings.prune_interval
        self.retentions = retentions
        self.worker_id = worker_id

    @property
    def needed(self) -> bool:
        return self.retention is not None or bool(self.retentions())

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
