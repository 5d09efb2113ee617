"""Queues, managed at run time: list them with their figures, set their limits, pause and
resume them. Claiming within their limits is the worker's (:mod:`zart.worker.queues`). See
``docs/queues.md``."""

from __future__ import annotations

from typing import Any

from zart.models.queues import QueueLimits, check_queue_name, declared_queues
from zart.repositories import queues as queues_repo
from zart.repositories.queues import QueueRecord
from zart.scheduler.base import SchedulerBase

#: ``set_queue``'s "leave this limit as it is".
UNCHANGED: Any = object()


class QueueOperations(SchedulerBase):
    """The queues part of :class:`~zart.DurableScheduler`."""

    async def list_queues(self) -> list[QueueRecord]:
        """Every queue with its limits, whether it is paused, its depth (``queued``: scheduled
        or waiting), its ``running`` count and its starts in the rate window."""
        async with self.store.reading() as db:
            return await db.run(queues_repo.list_queues, now=self.clock.now())

    async def get_queue(self, name: str) -> QueueRecord:
        """Queue ``name`` with its figures; :class:`~zart.QueueNotFound` if none is stored."""
        name = check_queue_name(name)
        async with self.store.reading() as db:
            return await db.run(queues_repo.get_queue, name, now=self.clock.now())

    async def set_queue(
        self,
        name: str,
        *,
        concurrency: int | None = UNCHANGED,
        partition_concurrency: int | None = UNCHANGED,
        rate_limit: str | None = UNCHANGED,
        partition_rate_limit: str | None = UNCHANGED,
    ) -> QueueRecord:
        """Change queue ``name``'s limits at run time (creating it if need be): each given
        limit replaces the stored one, ``None`` removes it, one not given stays. Every worker
        applies it within one poll interval (at once where NOTIFY reaches it); it holds
        until the code's declaration of the queue changes. Bad values raise
        :class:`~zart.InvalidQueue` and store nothing."""
        name = check_queue_name(name)
        given = {
            "concurrency": concurrency,
            "partition_concurrency": partition_concurrency,
            "rate_limit": rate_limit,
            "partition_rate_limit": partition_rate_limit,
        }
        changes = {limit: value for limit, value in given.items() if value is not UNCHANGED}
        checked = QueueLimits.checked(**changes)  # refused before anything is read or written
        now = self.clock.now()
        async with self.store.transaction() as db:
            current = {q.name: q for q in await db.run(queues_repo.list_queues, now=now)}
            old = current[name].limits if name in current else QueueLimits()
            stored = await db.run(
                queues_repo.set_queue,
                name,
                old.replaced(checked, changes),
                now=now,
                channel=self.runtime.channel,
            )
        self._queues_changed()
        return stored

    async def pause_queue(self, name: str) -> QueueRecord:
        """Stop claiming queue ``name``'s executions (those running go on); they wait, queued,
        until :meth:`resume_queue`. :class:`~zart.QueueNotFound` if none is stored."""
        return await self._set_paused(name, True)

    async def resume_queue(self, name: str) -> QueueRecord:
        """Claim queue ``name``'s executions again, within its limits."""
        return await self._set_paused(name, False)

    async def declare_queues(self) -> int:
        """Store the queues declared in this process (``zart.Queue``), as a starting worker
        does: a new one, or one whose declaration changed, gets the declared limits."""
        async with self.store.transaction() as db:
            changed = await db.run(
                queues_repo.declare_queues,
                declared_queues(),
                now=self.clock.now(),
                channel=self.runtime.channel,
            )
        if changed:
            self._queues_changed()
        return changed

    async def _set_paused(self, name: str, paused: bool) -> QueueRecord:
        name = check_queue_name(name)
        async with self.store.transaction() as db:
            stored = await db.run(
                queues_repo.set_paused,
                name,
                paused,
                now=self.clock.now(),
                channel=self.runtime.channel,
            )
        self._queues_changed()
        return stored

    def _queues_changed(self) -> None:
        """This process's workers re-read the queues now (others: NOTIFY, or their poll)."""
        for worker in self.workers:
            worker.queues_changed()
