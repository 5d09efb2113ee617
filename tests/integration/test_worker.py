"""The worker: concurrency limit, heartbeats, graceful shutdown, lost leases."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

import zart
from tests.integration.runtime_helpers import count, take_over, times, until
from zart import DurableScheduler
from zart.worker import worker as worker_module

in_flight: dict[str, int] = {"now": 0, "max": 0}
#: execution_id -> set once its "hold" step is running
started: dict[str, asyncio.Event] = {}


@zart.step("hold")
async def hold(seconds: float) -> None:
    count("hold")
    event = started.get(zart.context().execution_id)
    if event is not None:
        event.set()
    in_flight["now"] += 1
    in_flight["max"] = max(in_flight["max"], in_flight["now"])
    try:
        await asyncio.sleep(seconds)
    finally:
        in_flight["now"] -= 1


@zart.durable("worker-holding")
async def holding(data: dict[str, float]) -> str:
    await hold(data["seconds"])
    return "held"


async def test_the_worker_runs_at_most_concurrency_executions(
    scheduler: DurableScheduler,
) -> None:
    in_flight.update(now=0, max=0)
    ids = [await scheduler.start(holding, {"seconds": 0.15}) for _ in range(6)]

    async with scheduler.run_worker(concurrency=2, poll_interval=0.02):
        results = [await scheduler.wait(eid, timeout=20) for eid in ids]

    assert results == ["held"] * 6
    assert in_flight["max"] == 2


async def _renewals(scheduler: DurableScheduler, execution_id: str, count: int) -> None:
    """Return once the lease of ``execution_id`` has been renewed ``count`` times: its
    ``claimable_at`` (the lease expiry) moved forward. Heartbeats that stopped never get here,
    and the test times out; how loaded the machine is changes only how long it takes."""
    seen = (await scheduler.status(execution_id)).claimable_at
    assert seen is not None
    while count:
        await asyncio.sleep(0.02)
        now = (await scheduler.status(execution_id)).claimable_at
        assert now is not None  # still running under a lease
        if now > seen:
            seen, count = now, count - 1


@zart.step("hold-until-released")
async def hold_until_released() -> None:
    count("hold-until-released")
    started[zart.context().execution_id].set()
    await released[zart.context().execution_id].wait()


@zart.durable("worker-holding-until-released")
async def holding_until_released() -> str:
    await hold_until_released()
    return "held"


#: execution_id -> set by the test to let its "hold-until-released" step end
released: dict[str, asyncio.Event] = {}


async def _start_held(scheduler: DurableScheduler) -> str:
    execution_id = await scheduler.start(holding_until_released)
    started[execution_id] = asyncio.Event()
    released[execution_id] = asyncio.Event()
    return execution_id


async def test_heartbeats_keep_a_long_step_from_being_taken_over(
    scheduler: DurableScheduler,
) -> None:
    execution_id = await _start_held(scheduler)

    # The step outlives its lease several times over; only the renewals keep it.
    async with scheduler.run_worker(lease_timeout=2, heartbeat_interval=0.05, poll_interval=0.02):
        await asyncio.wait_for(started[execution_id].wait(), 10)
        await _renewals(scheduler, execution_id, 3)
        released[execution_id].set()
        assert await scheduler.wait(execution_id, timeout=20) == "held"

    assert times(execution_id, "hold-until-released") == 1
    assert (await scheduler.status(execution_id)).claim_count == 1


async def test_graceful_shutdown_lets_running_executions_finish(
    scheduler: DurableScheduler,
) -> None:
    execution_id = await scheduler.start(holding, {"seconds": 0.3})
    started[execution_id] = asyncio.Event()
    async with scheduler.run_worker(poll_interval=0.02) as worker:
        await asyncio.wait_for(started[execution_id].wait(), 10)
        await worker.stop(timeout=10)

    record = await scheduler.status(execution_id)
    assert record.status is zart.ExecutionStatus.COMPLETED
    assert times(execution_id, "hold") == 1


async def test_shutdown_past_its_time_limit_hands_the_execution_back(
    scheduler: DurableScheduler,
) -> None:
    execution_id = await scheduler.start(holding, {"seconds": 30})
    started[execution_id] = asyncio.Event()
    async with scheduler.run_worker(poll_interval=0.02) as worker:
        await asyncio.wait_for(started[execution_id].wait(), 10)
        await worker.stop(timeout=0.1)

    record = await scheduler.status(execution_id)
    assert record.status is zart.ExecutionStatus.SCHEDULED
    assert record.lease_owner is None
    assert record.claimable_at is not None


async def test_a_worker_that_lost_its_lease_stops_the_run(scheduler: DurableScheduler) -> None:
    execution_id = await scheduler.start(holding, {"seconds": 30})
    started[execution_id] = asyncio.Event()
    async with scheduler.run_worker(
        lease_timeout=3, heartbeat_interval=0.1, poll_interval=0.02
    ) as worker:
        await asyncio.wait_for(started[execution_id].wait(), 10)
        # Another worker takes the execution over (as if our lease had expired).
        taken = await take_over(scheduler, "worker-holding", after=timedelta(seconds=10))
        assert [c.execution.execution_id for c in taken] == [execution_id]
        # The next heartbeat notices and cancels the run.
        await until(lambda: worker.in_flight == 0, "the run stopped")

    assert (await scheduler.status(execution_id)).lease_owner == "thief"


@pytest.mark.parametrize("setting", [{"concurrency": 0}, {"lease_timeout": 0}])
async def test_bad_worker_settings_are_refused(
    scheduler: DurableScheduler, setting: dict[str, Any]
) -> None:
    with pytest.raises(zart.ConfigurationError):
        async with scheduler.run_worker(**setting):
            pass


async def test_heartbeats_go_on_while_shutdown_waits(scheduler: DurableScheduler) -> None:
    execution_id = await _start_held(scheduler)
    fast = {"lease_timeout": 2, "heartbeat_interval": 0.05, "poll_interval": 0.02}
    async with scheduler.run_worker(**fast) as worker:
        await asyncio.wait_for(started[execution_id].wait(), 10)
        stopping = asyncio.create_task(worker.stop(timeout=30))
        await asyncio.sleep(0)  # the stop has begun: the claim loop is cancelled
        await _renewals(scheduler, execution_id, 3)  # ... and the leases are still renewed
        released[execution_id].set()
        await stopping

    record = await scheduler.status(execution_id)
    assert record.status is zart.ExecutionStatus.COMPLETED
    assert record.claim_count == 1
    assert times(execution_id, "hold-until-released") == 1


all_started = {"expected": 0, "started": 0}
#: set by the test (an Event belongs to its test's loop)
everyone: dict[str, asyncio.Event] = {}


@zart.durable("worker-together")
async def together(data: dict[str, int]) -> int:
    all_started["started"] += 1
    if all_started["started"] >= all_started["expected"]:
        everyone["in"].set()
    await asyncio.wait_for(everyone["in"].wait(), 10)  # no run ends before all were claimed
    return data["n"]


async def test_a_backlog_is_claimed_in_chunks_one_right_after_the_other(
    scheduler: DurableScheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More ready executions than a claim takes at once (CLAIM_CHUNK) and free slots for
    them: the claim loop takes the next chunk at once, not after a poll or a run's end
    (here no run ends before all of them were claimed, and the poll is 30 s away)."""
    monkeypatch.setattr(worker_module, "CLAIM_CHUNK", 2)
    all_started.update(expected=13, started=0)
    everyone["in"] = asyncio.Event()
    ids = [await scheduler.start(together, {"n": n}) for n in range(13)]
    async with scheduler.run_worker(concurrency=20, poll_interval=30) as worker:
        batches: list[int] = []
        claim = worker._claim

        async def counted(free: int, now: Any) -> int:
            taken = await claim(free, now)
            batches.append(taken)
            return taken

        worker._claim = counted  # type: ignore[method-assign]
        worker.wake()
        results = [await scheduler.wait(eid, timeout=15) for eid in ids]
    assert results == list(range(13))
    taken = [n for n in batches if n]
    assert max(taken) <= 2
    assert sum(taken) == 13
