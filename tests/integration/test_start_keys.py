"""Singleton and debounced starts on both backends: a held key returns the execution holding
it, the last start of a debounce window wins and runs once, both exact when starters on two
schedulers (each its own connections) race on one key, and bad values store nothing."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

import zart
from zart import DurableScheduler

WORKER = {"poll_interval": 0.05, "lease_timeout": 10.0, "concurrency": 4}

ran: Counter[str] = Counter()
gates: dict[str, asyncio.Event] = {}
entered: dict[str, asyncio.Event] = {}


@zart.durable("sk-task")
async def keyed_task(data: dict[str, Any]) -> Any:
    ran[data["test"]] += 1
    if data.get("gated"):
        entered[data["test"]].set()
        await gates[data["test"]].wait()
    return data["n"]


@pytest.fixture
async def second(database_url: str) -> AsyncIterator[DurableScheduler]:
    async with DurableScheduler(database_url) as scheduler:
        yield scheduler


async def test_a_singleton_key_holds_one_unfinished_execution(
    scheduler: DurableScheduler, backend: str
) -> None:
    test = f"singleton-{backend}"
    gates[test], entered[test] = asyncio.Event(), asyncio.Event()
    first = await scheduler.start(
        keyed_task, {"test": test, "n": 1, "gated": True}, singleton_key="k"
    )
    # Another payload, the same key: the one holding it, nothing new.
    assert await scheduler.start(keyed_task, {"test": test, "n": 2}, singleton_key="k") == first
    other = await scheduler.start(keyed_task, {"test": test, "n": 3}, singleton_key="other")
    assert other != first
    async with scheduler.run_worker(**WORKER):
        await asyncio.wait_for(entered[test].wait(), timeout=60)
        running = await scheduler.start(keyed_task, {"test": test, "n": 4}, singleton_key="k")
        assert running == first
        gates[test].set()
        assert await scheduler.wait(first, timeout=60) == 1
        # Finished: the key is free again.
        again = await scheduler.start(keyed_task, {"test": test, "n": 5}, singleton_key="k")
        assert again != first
        assert await scheduler.wait(again, timeout=60) == 5
        await scheduler.wait(other, timeout=60)
    assert (await scheduler.list_executions()).total == 3
    # Idempotent by id as ever: the same id, task and payload is that execution.
    assert (
        await scheduler.start(
            keyed_task, {"test": test, "n": 5}, execution_id=again, singleton_key="k"
        )
        == again
    )


async def test_racing_singleton_starts_make_one_execution(
    scheduler: DurableScheduler, second: DurableScheduler, backend: str
) -> None:
    test = f"singleton-race-{backend}"
    starts = [
        (scheduler if i % 2 else second).start(
            keyed_task, {"test": test, "n": i}, singleton_key="race"
        )
        for i in range(20)
    ]
    ids = await asyncio.gather(*starts)
    assert len(set(ids)) == 1
    assert (await scheduler.list_executions()).total == 1


async def test_the_last_start_of_a_debounce_window_runs_once(
    scheduler: DurableScheduler, backend: str
) -> None:
    test = f"debounce-{backend}"
    ids = [
        await scheduler.start(
            keyed_task, {"test": test, "n": n}, debounce="300ms", debounce_key="d"
        )
        for n in range(3)
    ]
    assert len(set(ids)) == 1
    pending = await scheduler.status(ids[0])
    assert (pending.status, pending.payload) == ("scheduled", {"test": test, "n": 2})
    # Another key is another window; no key is the task's own window.
    other = await scheduler.start(
        keyed_task, {"test": test, "n": 10}, debounce="300ms", debounce_key="e"
    )
    task_wide = await scheduler.start(keyed_task, {"test": test, "n": 20}, debounce="300ms")
    assert len({ids[0], other, task_wide}) == 3
    async with scheduler.run_worker(**WORKER):
        assert await scheduler.wait(ids[0], timeout=60) == 2
        assert await scheduler.wait(other, timeout=60) == 10
        assert await scheduler.wait(task_wide, timeout=60) == 20
        # Claimed and run: a later start opens a new window.
        later = await scheduler.start(
            keyed_task, {"test": test, "n": 30}, debounce="300ms", debounce_key="d"
        )
        assert later != ids[0]
        assert await scheduler.wait(later, timeout=60) == 30
    assert ran[test] == 4
    assert (await scheduler.list_executions()).total == 4


async def test_racing_debounced_starts_make_one_execution(
    scheduler: DurableScheduler, second: DurableScheduler, backend: str
) -> None:
    test = f"debounce-race-{backend}"
    starts = [
        (scheduler if i % 2 else second).start(
            keyed_task, {"test": test, "n": i}, debounce="1m", debounce_key="race"
        )
        for i in range(20)
    ]
    ids = await asyncio.gather(*starts)
    assert len(set(ids)) == 1
    assert (await scheduler.list_executions()).total == 1
    assert (await scheduler.status(ids[0])).payload["n"] in range(20)


@pytest.mark.parametrize(
    ("start", "problem"),
    [
        ({"debounce": "soon"}, "debounce"),
        ({"debounce": 0}, "more than 0"),
        ({"debounce": "8d"}, "at most 7d"),
        ({"debounce": -1}, "debounce"),
        ({"debounce_key": "k"}, "needs debounce="),
        ({"debounce": "1s", "debounce_key": ""}, "debounce key"),
        ({"debounce": "1s", "singleton_key": "k"}, "not both"),
        ({"debounce": "1s", "execution_id": "mine"}, "no execution_id"),
        ({"singleton_key": "a\x00b"}, "singleton key"),
        ({"singleton_key": 7}, "singleton key"),
    ],
)
async def test_bad_start_keys_store_nothing(
    scheduler: DurableScheduler, start: dict[str, Any], problem: str
) -> None:
    with pytest.raises(zart.InvalidQueue, match=problem):
        await scheduler.start(keyed_task, {"test": "bad", "n": 0}, **start)
    assert (await scheduler.list_executions()).total == 0
