"""Writing checkpoints (and, on PostgreSQL, finishes): group commit on both backends.

PostgreSQL (:class:`DriverBatcher`): a write arriving while none is being written is one
fenced autocommit statement by its caller; those arriving meanwhile, from other runs, go out
together in one statement, each fenced by its own lease. What that saves is the worker's CPU
and round trips (PostgreSQL shares WAL flushes between concurrent commits anyway).

SQLite (:class:`GroupCommitter`) has one writer and, durable (``synchronous=FULL``), pays an
fsync per commit. There the checkpoints that arrive while one transaction is being written
wait for it and then go out together in the next transaction: one fsync for all of them.

Either way a lone write waits for nothing, and each caller returns only after its own write
committed, so nothing is acknowledged early. Statements that lock several execution rows lock
them in ``execution_id`` order, as heartbeats do, so they cannot deadlock (see
docs/architecture.md §3).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from zart.database import DriverConnections, DriverSession, SQLiteWriter
from zart.errors import LeaseLost, NonDeterministicReplay
from zart.models import ExecutionStatus, TimerKind
from zart.repositories import executions as executions_repo
from zart.repositories import steps as steps_repo
from zart.repositories import timers as timers_repo
from zart.repositories.records import AttemptOutcome, ExecutionRecord, Lease, StepRecord

Item = TypeVar("Item")
R = TypeVar("R")

#: At most this many checkpoints share one SQLite transaction.
MAX_GROUP = 256

Transaction = Callable[[], AbstractAsyncContextManager[AsyncConnection]]


@dataclass(slots=True)
class _Pending:
    lease: Lease
    outcome: steps_repo.StepOutcome
    attempt: AttemptOutcome | None
    timer: TimerKind | None
    future: asyncio.Future[StepRecord]


async def write_one(
    conn: AsyncConnection,
    lease: Lease,
    outcome: steps_repo.StepOutcome,
    attempt: AttemptOutcome | None,
    timer: TimerKind | None,
    now: datetime,
) -> StepRecord:
    """A step's outcome (fenced), plus a timer at its ``wake_at`` when asked."""
    record = await steps_repo.record_step_outcome(conn, lease, outcome, attempt=attempt, now=now)
    if timer is not None and outcome.wake_at is not None:
        await timers_repo.create_timer(
            conn,
            execution_id=lease.execution_id,
            run_id=outcome.run_id,
            name=outcome.name,
            kind=timer,
            fire_at=outcome.wake_at,
            now=now,
        )
    return record


def write_one_sqlite(
    session: DriverSession,
    lease: Lease,
    outcome: steps_repo.StepOutcome,
    attempt: AttemptOutcome | None,
    timer: TimerKind | None,
    now: datetime,
) -> StepRecord:
    """:func:`write_one` on SQLite's writer connection (synchronous, in its thread)."""
    record = steps_repo.record_step_outcome_sqlite(
        session, lease, outcome, attempt=attempt, now=now
    )
    if timer is not None and outcome.wake_at is not None:
        timers_repo.create_timer_sqlite(
            session,
            execution_id=lease.execution_id,
            run_id=outcome.run_id,
            name=outcome.name,
            kind=timer,
            fire_at=outcome.wake_at,
            now=now,
        )
    return record


class GroupCommitter:
    """Collects the checkpoints of concurrent runs and commits them in shared transactions.

    With ``sqlite_writer`` (while a worker runs) a group is written on that connection, the
    whole transaction in one hop to its thread; otherwise through ``transaction``."""

    def __init__(
        self,
        transaction: Transaction,
        now: Callable[[], datetime],
        *,
        sqlite_writer: Callable[[], SQLiteWriter | None] = lambda: None,
    ) -> None:
        self._transaction = transaction
        self._now = now
        self._sqlite_writer = sqlite_writer
        self._pending: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None

    async def write(
        self,
        lease: Lease,
        outcome: steps_repo.StepOutcome,
        attempt: AttemptOutcome | None,
        timer: TimerKind | None,
    ) -> StepRecord:
        future: asyncio.Future[StepRecord] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(lease, outcome, attempt, timer, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="zart-checkpoint-writer")
        # Each caller has a future of its own: a run cancelled meanwhile cancels only that
        # future (settling skips it), never the write others share, and its outcome is still
        # stored (the step did run). So no shield, whose extra future and callbacks every
        # checkpoint paid for.
        return await future

    async def _drain(self) -> None:
        while self._pending:
            group, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
            await self._commit(group)

    async def _commit(self, group: list[_Pending]) -> None:
        results: list[StepRecord | BaseException] = []
        try:
            writer = self._sqlite_writer()
            if writer is not None:
                results = await writer.transaction(
                    lambda session: _write_all(session, group, self._now())
                )
            else:
                async with self._transaction() as conn:
                    now = self._now()
                    for item in group:
                        try:
                            results.append(
                                await write_one(
                                    conn, item.lease, item.outcome, item.attempt, item.timer, now
                                )
                            )
                        except (LeaseLost, NonDeterministicReplay) as refused:
                            results.append(refused)  # refused without a database error: go on
        except BaseException as failure:  # the whole transaction is gone
            _settle([item.future for item in group], [failure] * len(group))
            if not isinstance(failure, Exception):
                raise
            return
        _settle([item.future for item in group], results)


def _settle(futures: list[asyncio.Future[R]], results: Sequence[R | BaseException]) -> None:
    """Hand each waiting writer its own result or error (one already cancelled is skipped)."""
    for future, result in zip(futures, results, strict=True):
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


def _write_all(
    session: DriverSession, group: list[_Pending], now: datetime
) -> list[StepRecord | BaseException]:
    results: list[StepRecord | BaseException] = []
    for item in group:
        try:
            results.append(
                write_one_sqlite(session, item.lease, item.outcome, item.attempt, item.timer, now)
            )
        except (LeaseLost, NonDeterministicReplay) as refused:
            results.append(refused)  # refused without a database error: go on
    return results


@dataclass(slots=True)
class _Queued(Generic[Item, R]):
    item: Item
    future: asyncio.Future[R]


class DriverBatcher(Generic[Item, R]):
    """PostgreSQL group commit of one kind of write (checkpoints without a timer; finishes).

    The writes of concurrently running executions that arrive while one is being written go
    out together in **one** autocommit statement (``many``), each fenced by its own lease. A
    write arriving while nothing is being written is written at once by its caller (``one``),
    so a lone run waits for nothing. Each caller returns only once its own write committed. A
    refused item gets its error (``LeaseLost``, ``NonDeterministicReplay``) while the others
    are stored; a database error fails the whole group."""

    def __init__(
        self,
        driver: DriverConnections,
        one: Callable[[DriverSession, Item], Awaitable[R]],
        many: Callable[[DriverSession, list[Item]], Awaitable[list[R | Exception]]],
        name: str,
    ) -> None:
        self._driver = driver
        self._one = one
        self._many = many
        self._name = name
        self._pending: list[_Queued[Item, R]] = []
        self._busy = False
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> R:
        if self._busy:
            future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
            self._pending.append(_Queued(item, future))
            # Its own future (see GroupCommitter.write): a cancelled run cancels only that.
            return await future
        self._busy = True
        try:
            async with self._driver.connection() as session:
                return await self._one(session, item)
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
        try:
            async with self._driver.connection() as session:
                if len(group) == 1:
                    try:
                        results: list[R | Exception] = [await self._one(session, group[0].item)]
                    except (LeaseLost, NonDeterministicReplay) as refused:
                        results = [refused]
                else:
                    results = await self._many(session, [queued.item for queued in group])
        except BaseException as failure:  # the whole statement is gone
            _settle([queued.future for queued in group], [failure] * len(group))
            if not isinstance(failure, Exception):
                raise
            return
        _settle([queued.future for queued in group], results)


Checkpoint = tuple[Lease, steps_repo.StepOutcome, AttemptOutcome | None]


def checkpoint_batcher(
    driver: DriverConnections, now: Callable[[], datetime]
) -> DriverBatcher[Checkpoint, StepRecord]:
    """Checkpoints without a timer, grouped (:func:`steps_repo.record_step_outcomes_driver`)."""

    async def one(session: DriverSession, item: Checkpoint) -> StepRecord:
        lease, outcome, attempt = item
        return await steps_repo.record_step_outcome_driver(
            session, lease, outcome, attempt=attempt, now=now()
        )

    async def many(session: DriverSession, items: list[Checkpoint]) -> list[StepRecord | Exception]:
        return list(await steps_repo.record_step_outcomes_driver(session, items, now=now()))

    return DriverBatcher(driver, one, many, "zart-checkpoint-group")


#: ``(lease, claimed_execution, completed_or_failed, result, error)``.
Finish = tuple[Lease, ExecutionRecord, ExecutionStatus, Any, Any]


def finish_batcher(
    driver: DriverConnections, now: Callable[[], datetime]
) -> DriverBatcher[Finish, ExecutionRecord]:
    """Finishes (result or failure, lease released), grouped
    (:func:`executions_repo.finish_executions_driver`)."""

    async def one(session: DriverSession, item: Finish) -> ExecutionRecord:
        lease, execution, status, result, error = item
        return await executions_repo.finish_execution_driver(
            session,
            lease,
            execution=execution,
            status=status,  # type: ignore[arg-type]
            result=result,
            error=error,
            now=now(),
        )

    async def many(
        session: DriverSession, items: list[Finish]
    ) -> list[ExecutionRecord | Exception]:
        return list(await executions_repo.finish_executions_driver(session, items, now=now()))

    return DriverBatcher(driver, one, many, "zart-finish-group")
