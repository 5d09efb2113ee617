"""Claiming ahead (PostgreSQL): a worker claims a sleeper in the ``claim_ahead`` seconds before
it is due, holds it without running anything, and starts it when it is due. What it holds goes
back to ``waiting`` when it stops, and one cancelled meanwhile is never started."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import zart
from tests.factories import run_on, worker_store
from tests.integration.runtime_helpers import count, steps_of, times, wait_for_status
from zart import DurableScheduler
from zart.models import StepStatus
from zart.repositories import held as held_repo
from zart.repositories import leases as leases_repo
from zart.repositories import timers as timers_repo
from zart.worker import WorkerSettings

pytestmark = pytest.mark.postgresql_only

WORKER: dict[str, Any] = {"poll_interval": 0.02, "lease_timeout": 5.0}


@zart.step("ahead-before")
async def before() -> None:
    count("ahead-before")


@zart.step("ahead-after")
async def after() -> str:
    count("ahead-after")
    return "awake"


@zart.durable("ahead-nap")
async def nap(data: dict[str, float]) -> str:
    await before()
    await zart.sleep_until("nap", datetime.fromtimestamp(data["due"], UTC))
    return await after()


@zart.durable("ahead-approval")
async def approval(data: dict[str, float]) -> Any:
    return await zart.wait_for_event("approved", timeout=data["timeout"])


async def _until(check: Callable[[], bool], what: str) -> None:
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never {what}")


async def _status(scheduler: DurableScheduler, execution_id: str) -> zart.ExecutionStatus:
    return (await scheduler.status(execution_id)).status


async def test_a_sleeper_due_soon_is_held_then_started_when_due(
    suspending: DurableScheduler,
) -> None:
    async with suspending.run_worker(**WORKER, claim_ahead=1.5) as worker:
        due = time.time() + 3.0
        execution_id = await suspending.start(nap, {"due": due})
        # More than claim_ahead away: it suspends and waits without a lease, like any sleeper.
        waiting = await wait_for_status(suspending, execution_id, zart.ExecutionStatus.WAITING)
        assert waiting.lease_owner is None
        assert worker.held == 0
        await _until(lambda: worker.held == 1, "held")
        assert time.time() < due
        held = await suspending.status(execution_id)
        assert held.status is zart.ExecutionStatus.RUNNING
        assert held.lease_owner == worker.worker_id
        assert worker.in_flight == 0  # held, not running: no slot taken
        assert times(execution_id, "ahead-after") == 0
        assert await suspending.wait(execution_id, timeout=10) == "awake"
        assert worker.held == 0

    steps = await steps_of(suspending, execution_id)
    assert waiting.claimable_at is not None
    assert steps["nap"].status is StepStatus.COMPLETED
    assert steps["nap"].completed_at >= waiting.claimable_at  # never before it was due
    assert steps["ahead-after"].completed_at.timestamp() >= due
    assert times(execution_id, "ahead-before") == 1
    assert times(execution_id, "ahead-after") == 1
    assert (await suspending.status(execution_id)).claim_count == 2
    async with suspending.engine.connect() as conn:  # its timer fired when it was woken
        assert await run_on(conn, timers_repo.pending_timers, waiting.run_id) == []


async def test_a_sleeper_claimed_ahead_is_ready_to_start_yet_never_resumed_before_due(
    suspending: DurableScheduler,
) -> None:
    """The claim ahead completes the sleep at its wake time and fires its timer, so starting
    it when due writes nothing. Should its holder die, no one may resume it before it is
    due: its lease expiry (a short one here) or a renewal must not make it claimable sooner."""
    async with suspending.run_worker(**WORKER, claim_ahead=0.0):
        due = time.time() + 2.5
        execution_id = await suspending.start(nap, {"due": due})
        waiting = await wait_for_status(suspending, execution_id, zart.ExecutionStatus.WAITING)
    assert waiting.claimable_at is not None
    async with worker_store(suspending.engine) as store:  # a worker that dies right after
        now = datetime.now(UTC)
        [(claimed, due_at)], _outcomes = await store.run(
            held_repo.claim_ahead,
            worker_id="doomed",
            task_names=[nap.name],
            limit=10,
            now=now,
            horizon=now + timedelta(seconds=10),
            lease_timeout=timedelta(seconds=0.2),
        )
    assert due_at == waiting.claimable_at
    held = await suspending.status(execution_id)
    assert held.claimable_at == due_at  # not its lease expiry, 0.2 s from now
    async with suspending.engine.begin() as conn:
        renewed, _ = await run_on(
            conn,
            leases_repo.renew_leases,
            [claimed.lease],
            now=datetime.now(UTC),
            lease_timeout=timedelta(seconds=0.2),
        )
    assert renewed
    assert (await suspending.status(execution_id)).claimable_at == due_at
    nap_step = (await steps_of(suspending, execution_id))["nap"]
    assert nap_step.status is StepStatus.COMPLETED
    assert nap_step.completed_at == nap_step.wake_at == due_at
    async with suspending.engine.connect() as conn:
        assert await run_on(conn, timers_repo.pending_timers, waiting.run_id) == []

    async with suspending.run_worker(**WORKER, claim_ahead=0.0):  # takes it over when due
        assert await suspending.wait(execution_id, timeout=10) == "awake"
    steps = await steps_of(suspending, execution_id)
    assert steps["ahead-after"].completed_at.timestamp() >= due
    assert (await suspending.status(execution_id)).claim_count == 3
    assert times(execution_id, "ahead-after") == 1


async def test_a_stopping_worker_gives_what_it_holds_back_to_wait(
    suspending: DurableScheduler,
) -> None:
    async with suspending.run_worker(**WORKER, claim_ahead=10.0) as worker:
        due = time.time() + 3.0
        execution_id = await suspending.start(nap, {"due": due})
        await _until(lambda: worker.held == 1, "held")
    assert time.time() < due, "the machine was too slow for this test to mean anything"
    released = await suspending.status(execution_id)
    assert released.status is zart.ExecutionStatus.WAITING
    assert released.lease_owner is None
    wake_at = (await steps_of(suspending, execution_id))["nap"].wake_at
    assert released.claimable_at == wake_at  # due when it was, not at once

    async with suspending.run_worker(**WORKER, claim_ahead=0.0):
        assert await suspending.wait(execution_id, timeout=10) == "awake"
    assert times(execution_id, "ahead-before") == 1
    assert times(execution_id, "ahead-after") == 1


async def test_a_held_execution_cancelled_elsewhere_is_never_started(
    suspending: DurableScheduler, database_url: str
) -> None:
    async with (
        DurableScheduler(database_url) as elsewhere,  # no in-process abort reaches the worker
        suspending.run_worker(**WORKER, claim_ahead=10.0) as worker,
    ):
        due = time.time() + 1.5
        execution_id = await suspending.start(nap, {"due": due})
        await _until(lambda: worker.held == 1, "held")
        assert await elsewhere.cancel(execution_id)
        # When it comes due, waking it finds the lease gone and drops it.
        await _until(lambda: worker.held == 0, "dropped")
        assert time.time() >= due
        await asyncio.sleep(0.2)
        assert worker.in_flight == 0
    assert await _status(suspending, execution_id) is zart.ExecutionStatus.CANCELLED
    assert times(execution_id, "ahead-after") == 0
    assert "ahead-after" not in await steps_of(suspending, execution_id)


async def test_a_held_execution_cancelled_here_is_dropped_at_once(
    suspending: DurableScheduler,
) -> None:
    async with suspending.run_worker(**WORKER, claim_ahead=10.0) as worker:
        execution_id = await suspending.start(nap, {"due": time.time() + 5.0})
        await _until(lambda: worker.held == 1, "held")
        assert await suspending.cancel(execution_id)
        assert worker.held == 0
    assert await _status(suspending, execution_id) is zart.ExecutionStatus.CANCELLED
    assert times(execution_id, "ahead-after") == 0


async def test_an_event_wait_is_not_claimed_ahead(suspending: DurableScheduler) -> None:
    """An event wakes a waiting execution at once; one held by a worker would wait for its
    deadline instead. So a wait for an event stays waiting, even with its deadline near."""
    async with suspending.run_worker(**WORKER, claim_ahead=10.0) as worker:
        execution_id = await suspending.start(approval, {"timeout": 5.0})
        await wait_for_status(suspending, execution_id, zart.ExecutionStatus.WAITING)
        await asyncio.sleep(0.3)  # a few claim-loop turns
        assert worker.held == 0
        assert await _status(suspending, execution_id) is zart.ExecutionStatus.WAITING
        await suspending.offer_event(execution_id, "approved", {"by": "ada"})
        assert await suspending.wait(execution_id, timeout=10) == {"by": "ada"}


def test_claim_ahead_cannot_be_negative() -> None:
    with pytest.raises(zart.ConfigurationError, match="claim_ahead must be at least 0"):
        WorkerSettings(claim_ahead=-1.0)
    with pytest.raises(zart.ConfigurationError, match="claim_ahead_limit must be at least 0"):
        WorkerSettings(claim_ahead_limit=-1)
