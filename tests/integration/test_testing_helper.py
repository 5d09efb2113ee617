"""zart.testing drives executions through virtual time: long waits pass at once, for real.

Every scenario runs three ways: on PostgreSQL and on SQLite through the suite's own fresh
databases (``database_url``), and on the temporary SQLite file ``durable_test_scheduler()``
creates when given no URL (``backend`` is widened to ``temporary`` in this module for that).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import zart
from tests.conftest import BACKENDS
from tests.factories import run_on
from tests.integration.runtime_helpers import count, open_gate, pass_gate, times
from zart import DurableScheduler
from zart.models import StepStatus
from zart.repositories import steps as steps_repo
from zart.testing import (
    DEFAULT_START,
    FakeClock,
    WaitingForEvent,
    clock_of,
    durable_test_scheduler,
    run_to_completion,
    run_until_waiting,
)

DAY = timedelta(days=1)
#: Far more than skipped waits cost, far less than any wait these tests skip (an hour or more).
REAL_SECONDS = 5.0


@pytest.fixture(params=[*BACKENDS, "temporary"])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def url(backend: str, request: pytest.FixtureRequest) -> str | None:
    """The suite's fresh database for ``backend``; ``None`` (a temporary file) otherwise."""
    if backend == "temporary":
        return None
    database_url: str = request.getfixturevalue("database_url")
    return database_url


@pytest.fixture
async def skipping(url: str | None) -> AsyncIterator[DurableScheduler]:
    async with durable_test_scheduler(url) as scheduler:
        yield scheduler


async def _steps(scheduler: DurableScheduler, execution_id: str) -> dict[str, Any]:
    run_id = (await scheduler.status(execution_id)).run_id
    async with scheduler.engine.connect() as conn:
        return {s.name: s for s in await run_on(conn, steps_repo.list_steps, run_id)}


# -- sleep ---------------------------------------------------------------------------------------


class Sent(BaseModel):
    confirmation_at: datetime
    followup_at: datetime


@zart.step("testing-send-confirmation")
async def send_confirmation(email: str) -> None:
    count("send-confirmation")


@zart.step("testing-send-followup")
async def send_followup(email: str) -> None:
    count("send-followup")


@zart.durable("testing-followup")
async def followup(data: dict[str, str]) -> Sent:
    await send_confirmation(data["email"])
    confirmation_at = await zart.now("confirmation-sent-at")
    await zart.sleep("wait-24h", timedelta(hours=24))
    await send_followup(data["email"])
    return Sent(confirmation_at=confirmation_at, followup_at=await zart.now("followup-sent-at"))


async def test_a_24_hour_sleep_passes_at_once(skipping: DurableScheduler) -> None:
    clock = clock_of(skipping)
    began = time.monotonic()

    execution_id = await skipping.start(followup, {"email": "ada@example.com"})
    sent = await run_to_completion(skipping, execution_id)

    assert time.monotonic() - began < REAL_SECONDS
    assert sent == Sent(confirmation_at=DEFAULT_START, followup_at=DEFAULT_START + DAY)
    assert clock.now() == DEFAULT_START + DAY
    assert times(execution_id, "send-confirmation") == 1
    assert times(execution_id, "send-followup") == 1
    record = await skipping.status(execution_id)
    assert record.claim_count == 2  # it suspended once, and was woken by the jump
    nap = (await _steps(skipping, execution_id))["wait-24h"]
    assert nap.status is StepStatus.COMPLETED
    assert nap.wake_at == DEFAULT_START + DAY


class Launch(BaseModel):
    at: datetime


@zart.durable("testing-launch")
async def launch(data: Launch) -> datetime:
    await zart.sleep_until("until-launch", data.at)
    return await zart.now("launched-at")


async def test_sleep_until_a_virtual_future_datetime(skipping: DurableScheduler) -> None:
    clock = clock_of(skipping)
    at = clock.now() + timedelta(days=3, minutes=5)

    execution_id = await skipping.start(launch, Launch(at=at))

    assert await run_to_completion(skipping, execution_id) == at
    assert clock.now() == at


@zart.step("testing-flaky", retry="fixed(2, 1h)")
async def flaky() -> int:
    attempt = zart.context().current_attempt
    if attempt < 2:
        raise ConnectionError(f"down (attempt {attempt})")
    return attempt


@zart.durable("testing-long-backoff")
async def long_backoff(data: dict[str, Any]) -> int:
    return await flaky()


async def test_long_retry_back_offs_pass_at_once(skipping: DurableScheduler) -> None:
    execution_id = await skipping.start(long_backoff, {})

    assert await run_to_completion(skipping, execution_id) == 2
    assert clock_of(skipping).now() == DEFAULT_START + timedelta(hours=2)
    assert (await skipping.status(execution_id)).claim_count == 3


# -- events --------------------------------------------------------------------------------------


class Decision(BaseModel):
    approved: bool
    reviewer: str


async def _decide(within: timedelta | None) -> str:
    try:
        decision = await zart.wait_for_event("manager-approval", timeout=within, model=Decision)
    except zart.EventTimeout:
        expired_at = await zart.now("expired-at")
        return f"expired at {expired_at.isoformat()}"
    return f"approved by {decision.reviewer}" if decision.approved else "rejected"


@zart.durable("testing-approval")
async def approval(data: dict[str, Any]) -> str:
    return await _decide(within=DAY)


@zart.durable("testing-approval-no-timeout")
async def approval_no_timeout(data: dict[str, Any]) -> str:
    return await _decide(within=None)


async def test_no_event_within_the_timeout_takes_the_event_timeout_path(
    skipping: DurableScheduler,
) -> None:
    execution_id = await skipping.start(approval, {})

    assert await run_to_completion(skipping, execution_id) == "expired at 2030-01-02T00:00:00+00:00"
    assert clock_of(skipping).now() == DEFAULT_START + DAY
    step = (await _steps(skipping, execution_id))["manager-approval"]
    assert step.status is StepStatus.FAILED
    assert step.error["kind"] == "event_timeout"


async def test_an_event_offered_first_is_returned_without_moving_the_clock(
    skipping: DurableScheduler,
) -> None:
    execution_id = await skipping.start(approval, {})
    await skipping.offer_event(
        execution_id, "manager-approval", Decision(approved=True, reviewer="ana")
    )

    assert await run_to_completion(skipping, execution_id) == "approved by ana"
    assert clock_of(skipping).now() == DEFAULT_START


async def test_an_event_offered_part_way_through_the_timeout(skipping: DurableScheduler) -> None:
    clock = clock_of(skipping)
    execution_id = await skipping.start(approval, {})

    waiting = await run_until_waiting(skipping, execution_id)
    assert waiting.status is zart.ExecutionStatus.WAITING
    assert waiting.claimable_at == DEFAULT_START + DAY  # the event's deadline
    assert clock.now() == DEFAULT_START
    clock.advance("3h")
    await skipping.offer_event(
        execution_id, "manager-approval", {"approved": False, "reviewer": "bo"}
    )

    assert await run_to_completion(skipping, execution_id) == "rejected"
    assert clock.now() == DEFAULT_START + timedelta(hours=3)


async def test_an_event_without_timeout_is_a_clear_error_not_a_hang(
    skipping: DurableScheduler,
) -> None:
    execution_id = await skipping.start(approval_no_timeout, {})

    with pytest.raises(WaitingForEvent) as waiting:
        await run_to_completion(skipping, execution_id, timeout=10)

    assert waiting.value.events == ("manager-approval",)
    assert waiting.value.execution_id == execution_id
    message = str(waiting.value)
    assert f"execution {execution_id!r} waits for event 'manager-approval'" in message
    assert "scheduler.offer_event(" in message
    assert isinstance(waiting.value, zart.ZartError)
    assert clock_of(skipping).now() == DEFAULT_START  # no time was skipped for nothing

    await skipping.offer_event(
        execution_id, "manager-approval", {"approved": True, "reviewer": "cy"}
    )
    assert await run_to_completion(skipping, execution_id) == "approved by cy"


# -- the end, as scheduler.wait reports it -------------------------------------------------------


@zart.durable("testing-fails-after-a-week")
async def fails_after_a_week(data: dict[str, Any]) -> None:
    await zart.sleep("a-week", timedelta(weeks=1))
    raise ValueError("the week was too long")


async def test_a_failure_after_a_skipped_wait_raises_execution_failed(
    skipping: DurableScheduler,
) -> None:
    execution_id = await skipping.start(fails_after_a_week, {})

    with pytest.raises(zart.ExecutionFailed, match="the week was too long"):
        await run_to_completion(skipping, execution_id)
    assert clock_of(skipping).now() == DEFAULT_START + timedelta(weeks=1)


@zart.step("testing-gated")
async def gated() -> str:
    await pass_gate()
    return "through"


@zart.durable("testing-gated-handler")
async def gated_handler(data: dict[str, Any]) -> str:
    await zart.sleep("first-an-hour", timedelta(hours=1))
    return await gated()


async def test_a_run_busy_in_a_step_times_out_in_real_seconds(skipping: DurableScheduler) -> None:
    execution_id = await skipping.start(gated_handler, {}, execution_id=f"gated-{time.time_ns()}")
    gate = open_gate(execution_id)

    with pytest.raises(zart.WaitTimedOut):
        await run_to_completion(skipping, execution_id, timeout=0.3)

    assert clock_of(skipping).now() == DEFAULT_START + timedelta(hours=1)
    gate.set()
    assert await run_to_completion(skipping, execution_id) == "through"


# -- other schedulers ----------------------------------------------------------------------------


@zart.durable("testing-short-nap")
async def short_nap(data: dict[str, Any]) -> datetime:
    await zart.sleep("two-seconds", 2)
    return await zart.now("woke-at")


async def test_an_in_memory_wait_on_the_fake_clock_is_skipped(
    url: str | None, tmp_path: Path
) -> None:
    clock = FakeClock()
    database = url or f"sqlite+aiosqlite:///{tmp_path / 'in-memory-waits.db'}"
    # The default inline_wait_limit (5 s): a 2-second sleep stays in memory, on the clock.
    async with DurableScheduler(database, clock=clock) as scheduler:
        await scheduler.migrate()
        async with scheduler.run_worker(poll_interval=0.02):
            execution_id = await scheduler.start(short_nap, {})
            woke_at = await run_to_completion(scheduler, execution_id)

        assert woke_at == DEFAULT_START + timedelta(seconds=2)
        assert (await scheduler.status(execution_id)).claim_count == 1  # never suspended


async def test_it_needs_a_fake_clock_and_a_worker(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'refused.db'}"
    async with DurableScheduler(url) as real_time:
        with pytest.raises(zart.ConfigurationError, match="FakeClock"):
            await run_to_completion(real_time, "any")
    async with DurableScheduler(url, clock=FakeClock()) as no_worker:
        with pytest.raises(zart.ConfigurationError, match="worker running in this process"):
            await run_to_completion(no_worker, "any")


def _exists(path: Path) -> bool:
    return path.exists()


async def test_the_temporary_database_is_removed_afterwards() -> None:
    start = datetime(2031, 5, 4, 3, 2, 1, tzinfo=UTC)
    async with durable_test_scheduler(start=start) as scheduler:
        assert scheduler.engine.url.database is not None
        path = Path(scheduler.engine.url.database)
        assert _exists(path)
        assert scheduler.clock is clock_of(scheduler)
        assert scheduler.clock.now() == start
        assert scheduler.runtime.inline_wait_limit == timedelta(0)
        execution_id = await scheduler.start(followup, {"email": "bo@example.com"})
        sent = await run_to_completion(scheduler, execution_id)
        assert sent.followup_at == start + DAY

    assert not _exists(path)
    assert not _exists(path.parent)
