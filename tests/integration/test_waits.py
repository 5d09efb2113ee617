"""Durable sleep and events on both backends: suspension, wake-ups, replays, errors."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

import zart
from tests.factories import run_on
from tests.integration.runtime_helpers import count, seen, steps_of, times, wait_for_status
from zart import DurableScheduler
from zart.models import StepStatus, TimerKind
from zart.repositories import events as events_repo
from zart.repositories import timers as timers_repo
from zart.testing import FakeClock, run_to_completion

# claim_ahead=0: these tests watch a short sleep suspend, which a worker claiming sleepers due
# within its claim_ahead window would take back at once (tests/integration/test_claim_ahead.py).
WORKER = {"poll_interval": 0.02, "lease_timeout": 5.0, "claim_ahead": 0.0}


# -- sleep -------------------------------------------------------------------------------------


@zart.step("before-nap")
async def before_nap() -> None:
    count("before-nap")


@zart.step("after-nap")
async def after_nap() -> str:
    count("after-nap")
    return "awake"


@zart.durable("waits-nap")
async def nap(data: dict[str, float]) -> str:
    await before_nap()
    await zart.sleep("nap", data["seconds"])
    return await after_nap()


async def test_a_sleep_suspends_without_a_lease_and_resumes(suspending: DurableScheduler) -> None:
    async with suspending.run_worker(**WORKER) as worker:
        execution_id = await suspending.start(nap, {"seconds": 0.6})
        waiting = await wait_for_status(suspending, execution_id, zart.ExecutionStatus.WAITING)
        assert waiting.lease_owner is None
        assert waiting.claimable_at is not None
        assert worker.in_flight == 0  # no slot held while it sleeps
        assert await suspending.wait(execution_id, timeout=10) == "awake"

    assert times(execution_id, "before-nap") == 1
    assert times(execution_id, "after-nap") == 1
    steps = await steps_of(suspending, execution_id)
    assert steps["nap"].status is StepStatus.COMPLETED
    assert (await suspending.status(execution_id)).claim_count == 2
    async with suspending.engine.connect() as conn:
        assert await run_on(conn, timers_repo.pending_timers, waiting.run_id) == []


async def test_a_worker_restarted_during_a_sleep_resumes_it(suspending: DurableScheduler) -> None:
    async with suspending.run_worker(**WORKER):
        execution_id = await suspending.start(nap, {"seconds": 0.8})
        waiting = await wait_for_status(suspending, execution_id, zart.ExecutionStatus.WAITING)
    # No worker at all for a while; then a new one picks the sleeper up at its due time.
    await asyncio.sleep(0.2)
    async with suspending.run_worker(**WORKER):
        assert await suspending.wait(execution_id, timeout=10) == "awake"

    record = await suspending.status(execution_id)
    assert record.completed_at is not None
    assert waiting.claimable_at is not None
    assert record.completed_at >= waiting.claimable_at  # never before the stored wake-up
    assert times(execution_id, "before-nap") == 1


async def test_a_short_sleep_stays_in_memory(scheduler: DurableScheduler) -> None:
    async with scheduler.run_worker(**WORKER):
        execution_id = await scheduler.start(nap, {"seconds": 0.1})
        assert await scheduler.wait(execution_id, timeout=10) == "awake"

    assert (await scheduler.status(execution_id)).claim_count == 1  # never suspended
    assert (await steps_of(scheduler, execution_id))["nap"].wake_at is not None


@zart.durable("waits-sleep-until-past")
async def sleep_until_past(data: dict[str, Any]) -> str:
    yesterday = await zart.now("now") - timedelta(days=1)
    await zart.sleep_until("long-ago", yesterday)
    return "at once"


async def test_sleep_until_the_past_returns_at_once(suspending: DurableScheduler) -> None:
    async with suspending.run_worker(**WORKER):
        execution_id = await suspending.start(sleep_until_past, {})
        assert await suspending.wait(execution_id, timeout=10) == "at once"

    assert (await suspending.status(execution_id)).claim_count == 1


async def test_sleep_until_needs_an_aware_datetime() -> None:
    from datetime import datetime

    with pytest.raises(zart.ConfigurationError, match="timezone-aware"):
        await zart.sleep_until("naive", datetime(2030, 1, 1))


# -- retries that back off for long -------------------------------------------------------------


@zart.step("slow-retry", retry="fixed(1, 500ms)")
async def slow_retry() -> int:
    attempt = zart.context().current_attempt
    count(f"slow-retry-{attempt}")
    if attempt == 0:
        raise ConnectionError("try later")
    return attempt


@zart.durable("waits-long-backoff")
async def long_backoff(data: dict[str, Any]) -> int:
    return await slow_retry()


async def test_a_long_retry_back_off_suspends(suspending: DurableScheduler) -> None:
    async with suspending.run_worker(**WORKER) as worker:
        execution_id = await suspending.start(long_backoff, {})
        waiting = await wait_for_status(suspending, execution_id, zart.ExecutionStatus.WAITING)
        assert worker.in_flight == 0
        async with suspending.engine.connect() as conn:
            (timer,) = await run_on(conn, timers_repo.pending_timers, waiting.run_id)
        assert timer.kind is TimerKind.RETRY
        assert await suspending.wait(execution_id, timeout=10) == 1

    assert times(execution_id, "slow-retry-0") == 1
    assert times(execution_id, "slow-retry-1") == 1


# -- events ------------------------------------------------------------------------------------


class Decision(BaseModel):
    approved: bool
    reviewer: str


@zart.step("validate-request")
async def validate_request() -> None:
    count("validate-request")


@zart.durable("waits-approval")
async def approval(data: dict[str, Any]) -> str:
    await validate_request()
    try:
        decision = await zart.wait_for_event(
            "manager-approval", timeout=data.get("timeout"), model=Decision
        )
    except zart.EventTimeout:
        return "timed out"
    seen[zart.context().execution_id].append(decision)
    return f"approved by {decision.reviewer}" if decision.approved else "rejected"


async def test_an_event_during_the_wait_resumes_it(suspending: DurableScheduler) -> None:
    async with suspending.run_worker(**WORKER):
        execution_id = await suspending.start(approval, {})
        waiting = await wait_for_status(suspending, execution_id, zart.ExecutionStatus.WAITING)
        assert waiting.claimable_at is None  # nothing but the event can wake it
        await suspending.offer_event(
            execution_id, "manager-approval", Decision(approved=True, reviewer="ana")
        )
        assert await suspending.wait(execution_id, timeout=10) == "approved by ana"

    assert seen[execution_id] == [Decision(approved=True, reviewer="ana")]
    assert times(execution_id, "validate-request") == 1


async def test_an_event_before_the_wait_is_kept_for_it(suspending: DurableScheduler) -> None:
    execution_id = await suspending.start(approval, {})
    await suspending.offer_event(
        execution_id, "manager-approval", {"approved": False, "reviewer": "bo"}
    )

    async with suspending.run_worker(**WORKER):
        assert await suspending.wait(execution_id, timeout=10) == "rejected"

    assert (await suspending.status(execution_id)).claim_count == 1  # never had to wait


async def test_no_event_before_the_timeout_raises_event_timeout(
    suspending: DurableScheduler,
) -> None:
    async with suspending.run_worker(**WORKER):
        execution_id = await suspending.start(approval, {"timeout": 0.3})
        assert await suspending.wait(execution_id, timeout=10) == "timed out"

    step = (await steps_of(suspending, execution_id))["manager-approval"]
    assert step.status is StepStatus.FAILED
    assert step.error["kind"] == "event_timeout"  # an explicit state, not a sentinel payload
    with pytest.raises(zart.EventNotAccepted):
        await suspending.offer_event(execution_id, "manager-approval", {"approved": True})


@zart.durable("waits-timeout-then-replay")
async def timeout_then_replay(data: dict[str, Any]) -> str:
    try:
        await zart.wait_for_event("late", timeout=0.2)
    except zart.EventTimeout:
        count("timed-out")
    await zart.sleep("after", 0.3)  # a suspension after the timeout forces a replay
    return "done"


async def test_a_timed_out_wait_raises_again_on_replay(suspending: DurableScheduler) -> None:
    async with suspending.run_worker(**WORKER):
        execution_id = await suspending.start(timeout_then_replay, {})
        for _ in range(500):  # until the wait has timed out (the run now sleeps in "after")
            steps = await steps_of(suspending, execution_id)
            if "after" in steps:
                break
            await asyncio.sleep(0.01)
        assert steps["late"].status is StepStatus.FAILED
        # Delivered after the timeout: stored, but the timed-out wait stays timed out.
        await suspending.offer_event(execution_id, "late", "too late")
        assert await suspending.wait(execution_id, timeout=10) == "done"

    assert times(execution_id, "timed-out") == 2  # the first pass and the replay


async def test_event_errors(suspending: DurableScheduler) -> None:
    execution_id = await suspending.start(approval, {})
    await suspending.offer_event(
        execution_id, "manager-approval", {"approved": True, "reviewer": "x"}
    )

    with pytest.raises(zart.EventAlreadyDelivered):
        await suspending.offer_event(execution_id, "manager-approval", {"approved": False})
    with pytest.raises(zart.ExecutionNotFound):
        await suspending.offer_event(f"missing-{uuid.uuid4()}", "manager-approval", {})
    with pytest.raises(zart.InvalidPayload, match="NUL"):
        await suspending.offer_event(execution_id, "other", {"text": "a\x00b"})
    await suspending.cancel(execution_id)
    with pytest.raises(zart.EventNotAccepted, match="cancelled"):
        await suspending.offer_event(execution_id, "other", {})


async def test_an_event_that_does_not_fit_the_model_is_refused_at_the_door(
    suspending: DurableScheduler,
) -> None:
    async with suspending.run_worker(**WORKER):
        execution_id = await suspending.start(approval, {})
        await wait_for_status(suspending, execution_id, zart.ExecutionStatus.WAITING)
        with pytest.raises(zart.EventDoesNotFit) as refused:
            await suspending.offer_event(execution_id, "manager-approval", {"approved": "maybe"})
        # Nothing stored: the right event is still accepted and ends the wait.
        assert await list_events_of(suspending, execution_id) == []
        await suspending.offer_event(
            execution_id, "manager-approval", {"approved": True, "reviewer": "cy"}
        )
        assert await suspending.wait(execution_id, timeout=10) == "approved by cy"

    assert isinstance(refused.value, zart.InvalidPayload)
    assert refused.value.problems == [
        '(payload): "reviewer" is a required property',
        'approved: "maybe" is not of type "boolean"',
    ]
    assert "'manager-approval'" in str(refused.value)


async def list_events_of(scheduler: DurableScheduler, execution_id: str) -> list[Any]:
    async with scheduler.engine.connect() as conn:
        return list(await run_on(conn, events_repo.list_events, execution_id))


async def test_wait_for_event_outside_an_execution_is_an_error() -> None:
    with pytest.raises(zart.OutsideExecution):
        await zart.wait_for_event("anything")


# -- parallel waits ----------------------------------------------------------------------------


@zart.step("quick-{n}")
async def quick(n: int) -> int:
    count(f"quick-{n}")
    await asyncio.sleep(0.05)
    return n


@zart.durable("waits-parallel")
async def parallel_waits(data: dict[str, Any]) -> list[Any]:
    async def branch_with_event() -> Any:
        await quick(1)
        return await zart.wait_for_event("go")

    async def branch_with_sleep() -> int:
        await zart.sleep("rest", 0.3)
        return await quick(2)

    return list(await asyncio.gather(branch_with_event(), branch_with_sleep(), quick(3)))


async def test_parallel_branches_suspend_together_and_resume(
    suspending: DurableScheduler,
) -> None:
    async with suspending.run_worker(**WORKER):
        execution_id = await suspending.start(parallel_waits, {})
        await wait_for_status(suspending, execution_id, zart.ExecutionStatus.WAITING)
        await suspending.offer_event(execution_id, "go", "event!")
        assert await suspending.wait(execution_id, timeout=10) == ["event!", 2, 3]

    for n in (1, 2, 3):
        assert times(execution_id, f"quick-{n}") == 1, n


@zart.durable("waits-simultaneous")
async def simultaneous(data: dict[str, Any]) -> list[Any]:
    return list(
        await asyncio.gather(
            zart.sleep("pause", 0.4),
            zart.wait_for_event("signal", timeout=60),
        )
    )


async def test_waits_registered_at_the_same_moment_are_all_stored(database_url: str) -> None:
    # On a FakeClock: the sleep cannot come due (and its timer be fired by a claim) between
    # the suspension and the look at the timers, however loaded the machine is.
    async with (
        DurableScheduler(database_url, clock=FakeClock(), inline_wait_limit=0) as frozen,
        frozen.run_worker(**WORKER),
    ):
        execution_id = await frozen.start(simultaneous, {})
        waiting = await wait_for_status(frozen, execution_id, zart.ExecutionStatus.WAITING)
        steps = await steps_of(frozen, execution_id)
        assert {name: s.status for name, s in steps.items()} == {
            "pause": StepStatus.WAITING,
            "signal": StepStatus.WAITING,
        }
        async with frozen.engine.connect() as conn:
            pending = await run_on(conn, timers_repo.pending_timers, waiting.run_id)
        assert sorted(t.kind for t in pending) == sorted([TimerKind.SLEEP, TimerKind.EVENT_TIMEOUT])
        assert waiting.claimable_at == steps["pause"].wake_at  # the earlier of the two timers
        await frozen.offer_event(execution_id, "signal", "go")
        assert await run_to_completion(frozen, execution_id, timeout=10) == [None, "go"]


@zart.step("backoff-{n}", retry="fixed(1, 300ms)")
async def backing_off(n: int) -> int:
    if zart.context().current_attempt == 0:
        raise ConnectionError("later")
    return n


@zart.durable("waits-two-backoffs")
async def two_backoffs(data: dict[str, Any]) -> list[int]:
    return list(await asyncio.gather(backing_off(1), backing_off(2)))


async def test_two_branches_backing_off_at_once_suspend_together(
    suspending: DurableScheduler,
) -> None:
    async with suspending.run_worker(**WORKER):
        execution_id = await suspending.start(two_backoffs, {})
        assert await suspending.wait(execution_id, timeout=10) == [1, 2]

    assert (await suspending.status(execution_id)).claim_count == 2  # suspended once, together


@zart.durable("waits-swallowed-signal")
async def swallowed_signal(data: dict[str, Any]) -> str:
    results = await asyncio.gather(zart.sleep("pause", 0.3), return_exceptions=True)
    # The suspension signal came back as a value; the run must still wait, not finish here.
    return f"finished early with {results!r}" if results[0] is not None else "slept"


async def test_a_handler_that_swallows_the_suspension_still_waits(
    suspending: DurableScheduler,
) -> None:
    async with suspending.run_worker(**WORKER):
        execution_id = await suspending.start(swallowed_signal, {})
        assert await suspending.wait(execution_id, timeout=10) == "slept"
