"""The virtual clock of zart.testing: time moves only when told to, forward only."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from zart.clock import Clock
from zart.testing import DEFAULT_START, FakeClock

HOUR = timedelta(hours=1)


async def _settle() -> None:
    """Let every task that can run, run."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_it_starts_at_a_fixed_utc_instant_and_stays_there() -> None:
    clock: Clock = FakeClock()

    assert clock.now() == DEFAULT_START == datetime(2030, 1, 1, tzinfo=UTC)
    assert clock.now().tzinfo is UTC
    assert clock.now() == clock.now()


def test_a_given_start_is_kept_in_utc() -> None:
    paris = timezone(timedelta(hours=2))

    clock = FakeClock(datetime(2031, 6, 1, 12, 0, tzinfo=paris))

    assert clock.now() == datetime(2031, 6, 1, 10, 0, tzinfo=UTC)
    assert clock.now().tzinfo is UTC


def test_a_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(datetime(2030, 1, 1))


def test_advance_moves_forward_by_any_duration_form() -> None:
    clock = FakeClock()

    assert clock.advance(timedelta(minutes=5)) == DEFAULT_START + timedelta(minutes=5)
    clock.advance(30)
    clock.advance("1h")

    assert clock.now() == DEFAULT_START + timedelta(hours=1, minutes=5, seconds=30)


@pytest.mark.parametrize("delta", [timedelta(seconds=-1), -0.5, -3])
def test_advance_never_goes_backwards(delta: timedelta | float) -> None:
    clock = FakeClock()

    with pytest.raises(ValueError, match="never goes backwards"):
        clock.advance(delta)

    assert clock.now() == DEFAULT_START


def test_advance_to_never_goes_backwards_but_may_stay() -> None:
    clock = FakeClock()
    clock.advance(HOUR)

    with pytest.raises(ValueError, match="never goes backwards"):
        clock.advance_to(DEFAULT_START)
    assert clock.advance_to(DEFAULT_START + HOUR) == DEFAULT_START + HOUR
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.advance_to(datetime(2031, 1, 1))

    assert clock.now() == DEFAULT_START + HOUR


async def test_sleeping_until_now_or_the_past_returns_at_once() -> None:
    clock = FakeClock()

    await clock.sleep_until(DEFAULT_START)
    await clock.sleep_until(DEFAULT_START - HOUR)

    assert clock.pending() == ()


async def test_advance_wakes_the_due_sleepers_earliest_first() -> None:
    clock = FakeClock()
    woke: list[tuple[str, datetime]] = []

    async def sleeper(name: str, hours: int) -> None:
        await clock.sleep_until(DEFAULT_START + hours * HOUR)
        woke.append((name, clock.now()))

    tasks = [
        asyncio.create_task(sleeper(name, hours))
        for name, hours in (("three", 3), ("one", 1), ("two", 2), ("one-again", 1))
    ]
    await _settle()
    assert woke == []  # nothing moves time but the test

    clock.advance(timedelta(minutes=90))
    await _settle()
    assert [name for name, _ in woke] == ["one", "one-again"]  # ties in arrival order
    assert all(seen == DEFAULT_START + timedelta(minutes=90) for _, seen in woke)

    clock.advance_to(DEFAULT_START + 5 * HOUR)
    await _settle()
    assert [name for name, _ in woke] == ["one", "one-again", "two", "three"]
    await asyncio.gather(*tasks)


async def test_a_sleeper_wakes_exactly_at_its_time() -> None:
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep_until(DEFAULT_START + HOUR))
    await _settle()

    clock.advance(HOUR - timedelta(microseconds=1))
    await _settle()
    assert not task.done()
    clock.advance(timedelta(microseconds=1))
    await _settle()

    assert task.done()


async def test_pending_and_next_wakeup_list_the_sleepers_in_memory() -> None:
    clock = FakeClock()
    assert clock.next_wakeup() is None

    later = asyncio.create_task(clock.sleep_until(DEFAULT_START + 2 * HOUR))
    sooner = asyncio.create_task(clock.sleep_until(DEFAULT_START + HOUR))
    await _settle()
    assert clock.pending() == (DEFAULT_START + HOUR, DEFAULT_START + 2 * HOUR)
    assert clock.next_wakeup() == DEFAULT_START + HOUR

    sooner.cancel()  # a cancelled sleeper no longer counts
    await _settle()
    assert clock.pending() == (DEFAULT_START + 2 * HOUR,)
    assert clock.next_wakeup() == DEFAULT_START + 2 * HOUR

    clock.advance(2 * HOUR)
    await later
    assert clock.pending() == ()
    assert clock.next_wakeup() is None
    assert sooner.cancelled()
