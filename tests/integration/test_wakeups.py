"""Wake-ups: NOTIFY (PostgreSQL), next-due planning, and recovery from a lost listener.

Workers here poll only every 30 s, so an execution that finishes within a few seconds was
woken by a notification or by the worker planning its next due time, never by polling.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

import zart
from zart import DurableScheduler

SLOW_POLL = {"poll_interval": 30.0, "lease_timeout": 30.0}


@zart.durable("wakeups-approval")
async def approval(data: dict[str, Any]) -> Any:
    return await zart.wait_for_event("approved")


@zart.durable("wakeups-nap")
async def nap(data: dict[str, Any]) -> str:
    await zart.sleep("nap", 0.5)
    return "rested"


async def _waiting(scheduler: DurableScheduler, execution_id: str) -> None:
    for _ in range(500):
        if (await scheduler.status(execution_id)).status is zart.ExecutionStatus.WAITING:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never waited")


@pytest.mark.postgresql_only
async def test_a_start_from_another_process_wakes_an_idle_worker(database_url: str) -> None:
    async with (
        DurableScheduler(database_url) as worker_side,
        DurableScheduler(database_url) as app_side,  # no worker of its own to wake
        worker_side.run_worker(**SLOW_POLL),
    ):
        await asyncio.sleep(0.3)  # the worker is idle, listening
        execution_id = await app_side.start(nap, {})
        # Woken by NOTIFY at once; the 0.5 s nap then ends on the planned due time.
        assert await app_side.wait(execution_id, timeout=10) == "rested"


@pytest.mark.postgresql_only
async def test_an_event_wakes_a_waiting_execution_through_notify(database_url: str) -> None:
    async with (
        DurableScheduler(database_url, inline_wait_limit=0) as worker_side,
        DurableScheduler(database_url) as app_side,
        worker_side.run_worker(**SLOW_POLL),
    ):
        execution_id = await worker_side.start(approval, {})
        await _waiting(worker_side, execution_id)
        await app_side.offer_event(execution_id, "approved", {"by": "ana"})
        assert await app_side.wait(execution_id, timeout=10) == {"by": "ana"}


async def test_a_due_timer_wakes_the_execution_without_polling(database_url: str) -> None:
    async with (
        DurableScheduler(database_url, inline_wait_limit=0) as scheduler,
        scheduler.run_worker(**SLOW_POLL),
    ):
        execution_id = await scheduler.start(nap, {})
        assert await scheduler.wait(execution_id, timeout=10) == "rested"
        assert (await scheduler.status(execution_id)).claim_count == 2  # it did suspend


@pytest.mark.postgresql_only
async def test_a_dropped_listener_reconnects_and_loses_no_wake_up(database_url: str) -> None:
    async with (
        DurableScheduler(database_url, inline_wait_limit=0) as scheduler,
        DurableScheduler(database_url) as app_side,
        scheduler.run_worker(poll_interval=1.0, lease_timeout=30.0) as worker,
    ):
        first = await scheduler.start(approval, {})
        await _waiting(scheduler, first)
        pid = worker.listener_pid
        assert pid is not None
        async with scheduler.engine.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            await conn.commit()
        # Delivered while nobody listens: the NOTIFY is lost; the re-check finds it.
        await app_side.offer_event(first, "approved", "while deaf")
        assert await app_side.wait(first, timeout=10) == "while deaf"

        for _ in range(300):  # listening again, on a new connection
            if worker.listener_pid not in (None, pid):
                break
            await asyncio.sleep(0.02)
        assert worker.listener_pid not in (None, pid)
        second = await scheduler.start(approval, {})
        await _waiting(scheduler, second)
        await app_side.offer_event(second, "approved", "heard")
        assert await app_side.wait(second, timeout=10) == "heard"
