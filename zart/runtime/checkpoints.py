"""Group commit: the checkpoints (and the finishes) of concurrent runs share statements and
commits, on every backend, through one :class:`Batcher`.

A write arriving while none is being written is written at once by its caller, so a lone run
waits for nothing; those arriving meanwhile, from other runs, go out together as **one**
operation (``many``), each item fenced by its own lease. Each caller returns only after its
own write committed, so nothing is acknowledged early. A refused item (``LeaseLost``,
``NonDeterministicReplay``) gets its own error while the others are stored; a database error
fails the whole group.

What a group is depends on the backend, inside the repository's group operation
(:func:`zart.repositories.group_checkpoints.record_step_outcomes`,
:func:`zart.repositories.leases.finish_executions`): on PostgreSQL one statement (``unnest``
of the items) in autocommit, which saves the worker's CPU and round trips (PostgreSQL shares
WAL flushes between concurrent commits anyway); on SQLite, which has one writer and pays an
fsync per durable commit, one transaction on the writer's thread for all of them. Statements
that lock several execution rows lock them in ``execution_id`` order, as heartbeats do, so
they cannot deadlock (see docs/architecture.md §3).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from zart.errors import LeaseLost, NonDeterministicReplay
from zart.repositories.executors import Operation
from zart.repositories.store import Store

Item = TypeVar("Item")
R = TypeVar("R")

#: At most this many writes share one group.
MAX_GROUP = 256


@dataclass(slots=True)
class _Queued(Generic[Item, R]):
    item: Item
    future: asyncio.Future[R]


class Batcher(Generic[Item, R]):
    """Group commit of one kind of write: ``one(backend, item, now=)`` writes an item alone,
    ``many(backend, items, now=)`` a group (per item its result or the error it is refused
    with), at the time ``now()`` gives when the write goes out (one time for a group)."""

    def __init__(
        self,
        store: Store,
        one: Callable[..., Operation[R]],
        many: Callable[..., Operation[Sequence[R | Exception]]],
        now: Callable[[], datetime],
        name: str,
    ) -> None:
        self._store = store
        self._one = one
        self._many = many
        self._now = now
        self._name = name
        self._pending: list[_Queued[Item, R]] = []
        self._busy = False
        self._drainer: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        """Whether a write of this batcher is under way."""
        return self._busy

    async def submit(self, item: Item) -> R:
        if self._busy:
            future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
            self._pending.append(_Queued(item, future))
            # Each caller has a future of its own: a run cancelled meanwhile cancels only that
            # future (settling skips it), never the write others share, and its outcome is
            # still stored (the step did run). So no shield, whose extra future and callbacks
            # every write paid for.
            return await future
        self._busy = True
        try:
            return await self._store.run(self._one, item, now=self._now())
        finally:
            self._busy = False
            if self._pending:
                self._busy = True
                self._drainer = asyncio.create_task(self._drain(), name=self._name)

    async def _drain(self) -> None:
        try:
            while self._pending:
                group, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
                await self._commit(group)
        finally:
            self._busy = False

    async def _commit(self, group: list[_Queued[Item, R]]) -> None:
        futures = [queued.future for queued in group]
        try:
            if len(group) == 1:
                try:
                    results: Sequence[R | Exception] = [
                        await self._store.run(self._one, group[0].item, now=self._now())
                    ]
                except (LeaseLost, NonDeterministicReplay) as refused:
                    results = [refused]
            else:
                items = [queued.item for queued in group]
                results = await self._store.run(self._many, items, now=self._now())
        except BaseException as failure:  # the whole group is gone
            _settle(futures, [failure] * len(group))
            if not isinstance(failure, Exception):
                raise
            return
        _settle(futures, results)


def _settle(futures: list[asyncio.Future[R]], results: Sequence[R | BaseException]) -> None:
    """Hand each waiting writer its own result or error (one already cancelled is skipped)."""
    for future, result in zip(futures, results, strict=True):
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
