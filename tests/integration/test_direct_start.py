"""Starts that hand their execution straight to an in-process worker: the execution is
inserted already claimed (one commit, no claim), the worker runs it at once, and ``wait``
gets the finished record from the worker instead of reading it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event

import zart
from tests.factories import run_on
from tests.integration.runtime_helpers import count, open_gate, pass_gate, take_over, times, until
from zart import DurableScheduler
from zart.repositories import claims
from zart.repositories import executions as executions_repo

#: No poll would find work within a test: only a start's hand-over or a wake-up can.
SLOW_POLL = {"poll_interval": 60.0, "lease_timeout": 5.0}


@zart.step("direct-gated")
async def gated() -> str:
    count("gated")
    await pass_gate()
    return "passed"


@zart.durable("direct-start")
async def direct(data: dict[str, Any]) -> str:
    return await gated()


@contextmanager
def execution_reads(scheduler: DurableScheduler) -> Iterator[list[str]]:
    """The statements reading ``zart_executions`` through the scheduler's engine meanwhile."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "zart_executions" in statement:
            seen.append(statement)

    target = scheduler.engine.sync_engine
    event.listen(target, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(target, "before_cursor_execute", before)


async def test_a_start_runs_on_the_in_process_worker_without_a_claim(
    scheduler: DurableScheduler,
) -> None:
    execution_id = f"direct-{uuid.uuid4()}"
    gate = open_gate(execution_id)
    async with scheduler.run_worker(**SLOW_POLL) as worker:
        await scheduler.start(direct, {}, execution_id=execution_id)

        # Stored as claimed by this worker before start() returned, and running here.
        record = await scheduler.status(execution_id)
        assert record.status is zart.ExecutionStatus.RUNNING
        assert record.lease_owner == worker.worker_id
        assert record.claim_count == 1
        assert record.claimable_at is not None
        assert record.claimable_at > record.created_at
        assert worker.runs(execution_id)

        gate.set()
        assert await scheduler.wait(execution_id, timeout=10) == "passed"

    assert times(execution_id, "gated") == 1
    assert (await scheduler.status(execution_id)).claim_count == 1


async def test_wait_reads_nothing_while_its_execution_runs_here(
    scheduler: DurableScheduler,
) -> None:
    async with scheduler.run_worker(**SLOW_POLL):
        execution_id = await scheduler.start(direct, {})
        with execution_reads(scheduler) as reads:
            assert await scheduler.wait(execution_id, timeout=10) == "passed"
            record = await scheduler.wait_finished(execution_id, timeout=10)

    # The first wait took the worker's record; the second read the stored one.
    assert len(reads) == 1
    assert record.status is zart.ExecutionStatus.COMPLETED
    assert record.result == "passed"


async def test_a_start_beyond_the_free_slots_waits_for_one(scheduler: DurableScheduler) -> None:
    first, second = f"direct-{uuid.uuid4()}", f"direct-{uuid.uuid4()}"
    gate = open_gate(first)
    async with scheduler.run_worker(concurrency=1, **SLOW_POLL) as worker:
        await scheduler.start(direct, {}, execution_id=first)
        await scheduler.start(direct, {}, execution_id=second)
        await asyncio.sleep(0.1)

        # No slot: the second waits unclaimed for whichever worker frees one first.
        assert (await scheduler.status(second)).status is zart.ExecutionStatus.SCHEDULED
        assert not worker.runs(second)

        # The first run's end frees the slot and the worker claims the second at once (a
        # poll would only come in a minute).
        gate.set()
        assert await scheduler.wait(second, timeout=10) == "passed"

    assert (await scheduler.status(first)).status is zart.ExecutionStatus.COMPLETED


async def test_an_existing_id_gives_the_slot_back(scheduler: DurableScheduler) -> None:
    execution_id = await scheduler.start(direct, {}, execution_id=f"direct-{uuid.uuid4()}")
    async with scheduler.run_worker(concurrency=1, **SLOW_POLL) as worker:
        assert await scheduler.wait(execution_id, timeout=10) == "passed"
        # Idempotent start of a finished execution: nothing runs, and the slot is free again.
        assert await scheduler.start(direct, {}, execution_id=execution_id) == execution_id
        assert worker.in_flight == 0

        fresh = f"direct-{uuid.uuid4()}"
        gate = open_gate(fresh)
        await scheduler.start(direct, {}, execution_id=fresh)
        assert (await scheduler.status(fresh)).lease_owner == worker.worker_id
        gate.set()
        assert await scheduler.wait(fresh, timeout=10) == "passed"

    assert times(execution_id, "gated") == 1


async def test_a_direct_start_is_taken_over_once_its_lease_expires(
    scheduler: DurableScheduler,
) -> None:
    execution_id = f"direct-{uuid.uuid4()}"
    open_gate(execution_id)
    async with scheduler.run_worker(
        lease_timeout=3, heartbeat_interval=0.1, poll_interval=60
    ) as worker:
        await scheduler.start(direct, {}, execution_id=execution_id)
        # Another worker claims it after the lease's expiry, as it would if this process died.
        async with scheduler.engine.begin() as conn:
            too_early = await run_on(
                conn,
                claims.claim_ready_executions,
                worker_id="thief",
                task_names=["direct-start"],
                limit=1,
                now=scheduler.clock.now(),
                lease_timeout=timedelta(minutes=5),
                takeovers=1,
            )
            assert too_early == []
        taken = await take_over(scheduler, "direct-start", after=timedelta(seconds=10))
        assert [c.execution.execution_id for c in taken] == [execution_id]
        # The next heartbeat notices and stops the run here.
        await until(lambda: not worker.runs(execution_id), "the run stopped")

    assert (await scheduler.status(execution_id)).lease_owner == "thief"
    assert times(execution_id, "gated") == 1


async def test_a_start_in_the_callers_transaction_is_claimed_as_usual(
    scheduler: DurableScheduler,
) -> None:
    async with scheduler.run_worker(poll_interval=60, lease_timeout=5):
        async with scheduler.engine.begin() as conn:
            execution_id = await scheduler.start(direct, {}, session=conn)
            # Not handed to the worker: the caller's transaction may still roll back.
            record = await run_on(conn, executions_repo.get_execution, execution_id)
            assert record is not None
            assert record.status is zart.ExecutionStatus.SCHEDULED
        assert await scheduler.wait(execution_id, timeout=10) == "passed"
