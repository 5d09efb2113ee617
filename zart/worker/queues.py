"""What a worker knows of the queues, and its claims from the limited ones.

The worker's ordinary claim (:mod:`zart.repositories.claims`) takes the executions of every
unlimited queue it subscribes to, at today's cost: one statement, no join, the limited
queues' names a filter. Those limited queues' executions are claimed here, one queue at a
time, each in a transaction that locks the queue's row (:mod:`zart.repositories.
queue_claims`), and only when the ordinary claim left slots free.

Which queues are limited is read from ``zart_queues`` at most every poll interval, and at
once when a change is announced (NOTIFY :data:`~zart.repositories.queues.QUEUES_CHANGED`):
a limit set at run time takes effect on every worker within one poll interval.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from zart.models.queues import declared_queues
from zart.repositories import queue_claims
from zart.repositories import queues as queues_repo
from zart.repositories.executors import ConnectionExecutor
from zart.repositories.records import ClaimedExecution, StepRecord
from zart.repositories.store import Store
from zart.worker.settings import WorkerSettings


class QueueClaims:
    """The worker's view of the limited queues, and its claims from them."""

    def __init__(
        self, store: Store, worker_id: str, task_names: Sequence[str], settings: WorkerSettings
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.task_names = list(task_names)
        #: The queues the worker claims from; ``None``: all.
        self.subscribed = None if settings.queues is None else sorted(settings.queues)
        self.lease_timeout = timedelta(seconds=settings.lease_timeout)
        #: Names of the limited (or paused) queues, as last read.
        self.limited: list[str] = []
        self._read_at: float | None = None
        #: When a rate limit lets the next start through (the earliest of the queues').
        self.retry_at: datetime | None = None
        #: Whether the last claim left due work of a limited queue behind.
        self.more = False

    def mark_stale(self) -> None:
        """Re-read the queues before the next claim (a change was announced)."""
        self._read_at = None

    async def refresh(self, max_age: float) -> None:
        """Re-read which queues are limited when the last read is ``max_age`` seconds old."""
        if self._read_at is not None and time.monotonic() - self._read_at < max_age:
            return
        self.read(await self.store.run(queues_repo.limited_queues))

    async def declare(self, db: ConnectionExecutor, now: datetime, channel: str) -> None:
        """Store the queues declared in code (the worker starts) and read the limited ones
        before the loops start: a start of this process may be handed over at once."""
        await db.run(queues_repo.declare_queues, declared_queues(), now=now, channel=channel)
        self.read(await db.run(queues_repo.limited_queues))

    def read(self, limited: list[str]) -> None:
        self.limited = limited
        self._read_at = time.monotonic()

    def claims_here(self, queue: str) -> bool:
        """Whether this worker may take an execution of ``queue`` without a limited claim (a
        start of this process, inserted already claimed)."""
        if self._read_at is None:  # not read yet, or a change announced: not now
            return False
        subscribed = self.subscribed is None or queue in self.subscribed
        return subscribed and queue not in self.limited

    @property
    def filters(self) -> tuple[list[str], list[str] | None]:
        """The limited queues and the subscribed ones (``None``: all), for the other claims."""
        return self.limited, self.subscribed

    @property
    def mine(self) -> list[str]:
        """The limited queues this worker claims from."""
        if self.subscribed is None:
            return self.limited
        return [name for name in self.limited if name in self.subscribed]

    async def claim(
        self, free: int, now: datetime
    ) -> tuple[list[ClaimedExecution], dict[str, dict[str, StepRecord]]]:
        """Claim up to ``free`` executions from the limited queues, one queue after the other:
        what was claimed and their outcomes; :attr:`more` says whether due work was left
        behind (a slot freed here should claim again), :attr:`retry_at` when a rate limit
        lets the next start through."""
        claimed: list[ClaimedExecution] = []
        outcomes: dict[str, dict[str, StepRecord]] = {}
        self.more = False
        self.retry_at = None
        for queue in self.mine:
            if len(claimed) >= free:
                self.more = True
                break
            taken = await self.store.run(
                queue_claims.claim_from_queue,
                queue=queue,
                worker_id=self.worker_id,
                task_names=self.task_names,
                limit=free - len(claimed),
                now=now,
                lease_timeout=self.lease_timeout,
            )
            claimed += taken.claimed
            outcomes.update(taken.outcomes)
            self.more = self.more or taken.more
            if taken.retry_at is not None:
                self.retry_at = min(taken.retry_at, self.retry_at or taken.retry_at)
        return claimed, outcomes

    def pause(self, longest: float, now: datetime) -> float:
        """At most ``longest`` seconds, less when a rate limit lets a start through sooner."""
        if self.retry_at is None:
            return longest
        return min(longest, max((self.retry_at - now).total_seconds(), 0.0))
