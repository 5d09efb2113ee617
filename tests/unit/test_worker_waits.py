"""The worker's loops wait with ``wait_for``; ``stop()`` ends them by cancelling them."""

from __future__ import annotations

import asyncio

import pytest

from zart.worker.listener import wait_for as _wait


async def _waiting_for_ever(event: asyncio.Event) -> None:
    while True:  # a worker loop: only a cancel ends it
        await _wait(event, 30)
        event.clear()


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
async def test_a_cancel_that_lands_as_the_wait_ends_still_ends_the_loop(turns: int) -> None:
    """``asyncio.wait_for`` on Python 3.11 swallows a cancel that lands after what it waits
    for is done but before it has returned (gh-86296): the loop then waits on, and a worker's
    stop() hung for ever on its listener. Here the cancel lands ``turns`` loop turns after
    the event was set, which covers that window."""
    event = asyncio.Event()
    loop = asyncio.create_task(_waiting_for_ever(event))
    await asyncio.sleep(0)  # the loop waits
    event.set()
    for _ in range(turns):
        await asyncio.sleep(0)
    loop.cancel()
    done, _ = await asyncio.wait([loop], timeout=2)
    assert loop in done
    assert loop.cancelled()


async def test_it_returns_when_the_event_is_set_or_the_time_is_up() -> None:
    event = asyncio.Event()
    started = asyncio.get_running_loop().time()
    await _wait(event, 0.05)
    assert asyncio.get_running_loop().time() - started >= 0.05
    event.set()
    await asyncio.wait_for(_wait(event, 30), 1)  # at once
