"""Takeovers in a running worker: a dead worker's execution is resumed before a backlog of
fresh starts due earlier than its lease expiry, and executions that died together are taken
over one at a time."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import zart
from tests.factories import run_on
from zart import DurableScheduler
from zart.repositories import claims

order: list[str] = []


@zart.step("note")
async def note() -> None:
    order.append(zart.context().execution_id)


@zart.durable("takeover-order")
async def noted() -> None:
    await note()


async def _die_holding(scheduler: DurableScheduler, limit: int) -> list[str]:
    """Claim ``limit`` ready executions as a worker that dies at once: their leases (of no
    length) have expired by the next claim, and they stay ``running``."""
    async with scheduler.engine.begin() as conn:
        taken = await run_on(
            conn,
            claims.claim_ready_executions,
            worker_id="dead",
            task_names=["takeover-order"],
            limit=limit,
            now=scheduler.clock.now(),
            lease_timeout=timedelta(0),
        )
    return [c.execution.execution_id for c in taken]


async def test_a_takeover_runs_before_a_backlog_of_fresh_starts(
    scheduler: DurableScheduler,
) -> None:
    order.clear()
    dead = await scheduler.start(noted, None)
    assert await _die_holding(scheduler, 1) == [dead]
    backlog = [await scheduler.start(noted, None) for _ in range(20)]

    async with scheduler.run_worker(concurrency=1, poll_interval=0.02):
        for execution_id in [dead, *backlog]:
            await scheduler.wait(execution_id, timeout=30)

    # The backlog's starts sort before the lease expiry: only the takeover claim puts it first.
    assert order[0] == dead
    assert sorted(order) == sorted([dead, *backlog])
    record = await scheduler.status(dead)
    assert (record.claim_count, record.crashed_claims) == (2, 1)


async def test_executions_that_died_together_are_taken_over_one_after_the_other(
    scheduler: DurableScheduler,
) -> None:
    order.clear()
    together = [await scheduler.start(noted, None) for _ in range(5)]
    assert sorted(await _die_holding(scheduler, 5)) == sorted(together)

    async with scheduler.run_worker(concurrency=8, poll_interval=0.02) as worker:
        most = 0
        for execution_id in together:
            while not (await scheduler.status(execution_id)).is_terminal:
                most = max(most, worker.in_flight)
                await asyncio.sleep(0.001)

    assert sorted(order) == sorted(together)
    assert most <= 1  # never two taken-over executions in flight on one worker at once
