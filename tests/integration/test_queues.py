"""Queues in-process, on both backends: the caps hold across two workers of two schedulers
(each its own connections), priority and partition fairness, the rate limit, a change at
run time, subscriptions, the code's declaration against an operator's change, and bad input
that stores nothing. The cross-process case (four ``zart worker`` processes) is in
``tests/acceptance/test_queue_workers.py``.

Concurrency is observed by the handlers themselves (entries and exits counted, the maximum
kept) and by sampling the stored running count; nothing here measures time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

import zart
from zart import DurableScheduler
from zart.models import QueueRow, QueueStartRow

WORKER = {"poll_interval": 0.05, "lease_timeout": 10.0, "concurrency": 8}

capped = zart.Queue("it-capped", concurrency=3)
tenants = zart.Queue("it-tenants", partition_concurrency=1)
ordered = zart.Queue("it-ordered", concurrency=1)
limited_rate = zart.Queue("it-rate", rate_limit="5/1s")
changing = zart.Queue("it-changing", concurrency=1)
tenant_rate = zart.Queue("it-tenant-rate", partition_rate_limit="3/1s")


class Journal:
    """What the handlers saw: how many ran at once (in all and per partition), in order."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.by_partition: dict[str, int] = defaultdict(int)
        self.most_by_partition: dict[str, int] = defaultdict(int)
        self.order: list[str] = []

    def enter(self, name: str, partition: str = "") -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        self.by_partition[partition] += 1
        self.most_by_partition[partition] = max(
            self.most_by_partition[partition], self.by_partition[partition]
        )
        self.order.append(name)

    def leave(self, partition: str = "") -> None:
        self.running -= 1
        self.by_partition[partition] -= 1


journals: dict[str, Journal] = defaultdict(Journal)
#: per test: the event its gated handlers wait for (made in the test's own event loop)
gates: dict[str, asyncio.Event] = {}


async def _run(queue: str, data: dict[str, Any]) -> str:
    journal = journals[data["test"] + queue]
    journal.enter(data["name"], data.get("partition", ""))
    try:
        if data.get("gated"):
            await gates[data["test"]].wait()
        else:
            await asyncio.sleep(0.01)
    finally:
        journal.leave(data.get("partition", ""))
    return data["name"]


@zart.durable("it-capped-task", queue=capped)
async def capped_task(data: dict[str, Any]) -> str:
    return await _run("capped", data)


@zart.durable("it-tenant-task", queue="it-tenants")
async def tenant_task(data: dict[str, Any]) -> str:
    return await _run("tenants", data)


@zart.durable("it-ordered-task", queue=ordered)
async def ordered_task(data: dict[str, Any]) -> str:
    return await _run("ordered", data)


@zart.durable("it-rate-task", queue=limited_rate)
async def rate_task(data: dict[str, Any]) -> str:
    return await _run("rate", data)


@zart.durable("it-tenant-rate-task", queue=tenant_rate)
async def tenant_rate_task(data: dict[str, Any]) -> str:
    return await _run("tenant-rate", data)


@zart.durable("it-changing-task", queue=changing)
async def changing_task(data: dict[str, Any]) -> str:
    return await _run("changing", data)


@zart.durable("it-plain-task")
async def plain_task(data: dict[str, Any]) -> str:
    return await _run("plain", data)


@pytest.fixture
async def second(database_url: str) -> AsyncIterator[DurableScheduler]:
    """Another scheduler on the same database: another process's connections, in effect."""
    async with DurableScheduler(database_url) as scheduler:
        yield scheduler


async def _sample_running(scheduler: DurableScheduler, queue: str, seen: list[int]) -> None:
    while True:
        with contextlib.suppress(zart.QueueNotFound):  # not stored until the workers start
            seen.append((await scheduler.get_queue(queue)).running)
        await asyncio.sleep(0.005)


async def _until(predicate: Any, what: str) -> None:
    for _ in range(1000):  # a guard against a hang, not a speed check
        if await predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


async def test_caps_hold_across_two_workers(
    scheduler: DurableScheduler, second: DurableScheduler, backend: str
) -> None:
    test = f"caps-{backend}"
    seen: list[int] = []
    async with scheduler.run_worker(**WORKER), second.run_worker(**WORKER):
        sampler = asyncio.create_task(_sample_running(second, "it-capped", seen))
        ids = [
            await scheduler.start(capped_task, {"test": test, "name": f"c{i}"}) for i in range(30)
        ]
        ids += [
            await second.start(
                tenant_task,
                {"test": test, "name": f"t{i}", "partition": f"tenant-{i % 5}"},
                partition_key=f"tenant-{i % 5}",
            )
            for i in range(30)
        ]
        for execution_id in ids:
            await scheduler.wait(execution_id, timeout=60)
        sampler.cancel()
    assert journals[test + "capped"].most <= 3
    assert 1 <= max(seen) <= 3
    by_tenant = journals[test + "tenants"].most_by_partition
    assert sorted(by_tenant) == [f"tenant-{i}" for i in range(5)]
    assert set(by_tenant.values()) == {1}
    queues = {q.name: q for q in await scheduler.list_queues()}
    assert queues["it-capped"].limits.concurrency == 3
    assert (queues["it-capped"].queued, queues["it-capped"].running) == (0, 0)


async def test_priority_first_then_fifo(scheduler: DurableScheduler, backend: str) -> None:
    test = f"priority-{backend}"
    await scheduler.declare_queues()
    await scheduler.pause_queue("it-ordered")
    async with scheduler.run_worker(**WORKER):
        ids = [
            await scheduler.start(ordered_task, {"test": test, "name": f"low{i}"}) for i in range(8)
        ]
        ids.append(await scheduler.start(ordered_task, {"test": test, "name": "high"}, priority=5))
        assert (await scheduler.status(ids[-1])).priority == 5
        await scheduler.resume_queue("it-ordered")
        for execution_id in ids:
            await scheduler.wait(execution_id, timeout=60)
    # A claim that read its time before the high one was started may take the oldest low one
    # first: no more than one claim's delay. The low ones run first in, first out.
    order = journals[test + "ordered"].order
    assert "high" in order[:2]
    assert [name for name in order if name != "high"] == [f"low{i}" for i in range(8)]


async def test_priority_first_in_an_unlimited_queue_too(
    scheduler: DurableScheduler, backend: str
) -> None:
    test = f"unlimited-priority-{backend}"
    # Stored before the worker starts (a start beside a running worker of this process may be
    # handed to it at once, claimed by no one), so its first claim sees the whole backlog.
    names = [f"low{i}" for i in range(30)]
    ids = [await scheduler.start(plain_task, {"test": test, "name": name}) for name in names]
    ids.append(await scheduler.start(plain_task, {"test": test, "name": "high"}, priority=5))
    ids.append(await scheduler.start(plain_task, {"test": test, "name": "higher"}, priority=9))
    ids.append(await scheduler.start(plain_task, {"test": test, "name": "below"}, priority=-2))
    async with scheduler.run_worker(**{**WORKER, "concurrency": 1}):  # one claim per slot
        for execution_id in ids:
            await scheduler.wait(execution_id, timeout=60)
    # Highest first, whatever the backlog of ordinary work before them; the rest in order
    # (a negative priority counts as 0 outside a limited queue: see docs/queues.md).
    assert journals[test + "plain"].order == ["higher", "high", *names, "below"]


async def test_a_busy_tenant_does_not_starve_another(
    scheduler: DurableScheduler, backend: str
) -> None:
    test = f"fair-{backend}"
    await scheduler.declare_queues()
    await scheduler.set_queue("it-tenants", concurrency=1, partition_concurrency=None)
    await scheduler.pause_queue("it-tenants")
    for i in range(300):
        await scheduler.start(tenant_task, {"test": test, "name": f"busy{i}"}, partition_key="busy")
    other = await scheduler.start(tenant_task, {"test": test, "name": "other"}, partition_key="b")
    await scheduler.resume_queue("it-tenants")
    async with scheduler.run_worker(**WORKER):
        await scheduler.wait(other, timeout=60)
    # The other tenant's first is among the first claim of each partition.
    assert "other" in journals[test + "tenants"].order[:2]


async def test_the_rate_limit_holds_in_every_window(
    scheduler: DurableScheduler, second: DurableScheduler, backend: str
) -> None:
    test = f"rate-{backend}"
    async with scheduler.run_worker(**WORKER), second.run_worker(**WORKER):
        ids = [await scheduler.start(rate_task, {"test": test, "name": f"r{i}"}) for i in range(12)]
        for execution_id in ids:
            await scheduler.wait(execution_id, timeout=60)
    async with scheduler.engine.connect() as connection:
        found = await connection.execute(
            select(QueueStartRow.execution_id, QueueStartRow.started_at)
        )
        starts = found.all()
    assert sorted(row.execution_id for row in starts) == sorted(ids)  # each start once
    times = sorted(row.started_at for row in starts)
    for first in times:
        assert sum(first <= t < first + timedelta(seconds=1) for t in times) <= 5
    assert times[-1] - times[0] >= timedelta(seconds=2)  # 12 starts need three windows


async def test_the_rate_limit_per_partition_holds_for_each_partition_alone(
    scheduler: DurableScheduler, second: DurableScheduler, backend: str
) -> None:
    test = f"tenant-rate-{backend}"
    await scheduler.declare_queues()
    await scheduler.pause_queue("it-tenant-rate")  # all stored before the first claim
    ids = [
        await scheduler.start(
            tenant_rate_task, {"test": test, "name": f"{t}{i}"}, partition_key=f"tenant-{t}"
        )
        for t in "abc"
        for i in range(6)
    ]
    await scheduler.resume_queue("it-tenant-rate")
    async with scheduler.run_worker(**WORKER), second.run_worker(**WORKER):
        for execution_id in ids:
            await scheduler.wait(execution_id, timeout=60)
    async with scheduler.engine.connect() as connection:
        found = await connection.execute(
            select(
                QueueStartRow.execution_id, QueueStartRow.partition_key, QueueStartRow.started_at
            )
        )
        starts = found.all()
    assert sorted(row.execution_id for row in starts) == sorted(ids)  # each start once
    by_partition: dict[str, list[Any]] = defaultdict(list)
    for row in starts:
        by_partition[row.partition_key].append(row.started_at)
    assert sorted(by_partition) == ["tenant-a", "tenant-b", "tenant-c"]
    for times in by_partition.values():
        times.sort()
        for first in times:
            assert sum(first <= t < first + timedelta(seconds=1) for t in times) <= 3
        assert times[3] - times[0] >= timedelta(seconds=1)  # six starts need two windows
    # Each partition has a window of its own: one claim (one timestamp) started several.
    by_claim: dict[Any, set[str]] = defaultdict(set)
    for row in starts:
        by_claim[row.started_at].add(row.partition_key)
    assert max(len(partitions) for partitions in by_claim.values()) >= 2


async def test_a_change_at_run_time_reaches_every_worker(
    scheduler: DurableScheduler, second: DurableScheduler, database_url: str, backend: str
) -> None:
    test = f"change-{backend}"
    journal = journals[test + "changing"]
    gate = gates[test] = asyncio.Event()
    async with scheduler.run_worker(**WORKER), second.run_worker(**WORKER):
        ids = [
            await scheduler.start(changing_task, {"test": test, "name": f"g{i}", "gated": True})
            for i in range(6)
        ]

        async def running(count: int) -> bool:
            return journal.running == count

        await _until(lambda: running(1), "one running under concurrency=1")
        # An operator elsewhere: no worker of its own, so only NOTIFY or the poll tells them.
        async with DurableScheduler(database_url) as operator:
            await operator.set_queue("it-changing", concurrency=3)
            await _until(lambda: running(3), "three running once the cap is 3")
            await operator.pause_queue("it-changing")
            gate.set()
            await _until(lambda: running(0), "the running ones finished")
            await asyncio.sleep(0.3)  # several poll intervals: a paused queue starts nothing
            statuses = [(await scheduler.status(i)).status for i in ids]
            assert statuses.count(zart.ExecutionStatus.COMPLETED) == 3
            await operator.resume_queue("it-changing")
        for execution_id in ids:
            await scheduler.wait(execution_id, timeout=60)
    assert journal.most == 3


async def test_a_subscribed_worker_claims_only_its_queues(
    scheduler: DurableScheduler, backend: str
) -> None:
    test = f"subscribed-{backend}"
    async with scheduler.run_worker(**WORKER, queues=["it-other"]):
        elsewhere = await scheduler.start(plain_task, {"test": test, "name": "default"})
        mine = await scheduler.start(plain_task, {"test": test, "name": "o"}, queue="it-other")
        await scheduler.wait(mine, timeout=60)
        assert (await scheduler.status(elsewhere)).status is zart.ExecutionStatus.SCHEDULED
        assert (await scheduler.status(mine)).queue == "it-other"
    async with scheduler.run_worker(**WORKER):
        assert await scheduler.wait(elsewhere, timeout=60) == "default"


async def test_the_declaration_is_stored_and_an_operator_change_stays(
    scheduler: DurableScheduler, second: DurableScheduler
) -> None:
    assert await scheduler.declare_queues() >= 6
    stored = await scheduler.get_queue("it-rate")
    assert str(stored.limits.rate_limit) == "5/1s"
    changed = await scheduler.set_queue("it-rate", rate_limit="100/1m")
    assert (changed.limits.rate_limit, changed.limits.concurrency) == (
        zart.models.queues.RateLimit(100, timedelta(minutes=1)),
        None,
    )
    assert await second.declare_queues() == 0  # the same code: the operator's change stays
    assert str((await second.get_queue("it-rate")).limits.rate_limit) == "100/1m"
    cleared = await scheduler.set_queue("it-rate", rate_limit=None, concurrency=2)
    assert (cleared.limits.rate_limit, cleared.limits.concurrency) == (None, 2)
    # A declaration compares equal to one a Zart before partition_rate_limit stored (which
    # had no such key), so upgrading Zart does not undo an operator's changes.
    async with scheduler.engine.connect() as connection:
        declared = dict((await connection.execute(select(QueueRow.name, QueueRow.declared))).all())
    assert declared["it-rate"] == {
        "concurrency": None,
        "partition_concurrency": None,
        "rate_limit": "5/1s",
    }
    assert declared["it-tenant-rate"]["partition_rate_limit"] == "3/1s"


@pytest.mark.parametrize(
    ("start", "problem"),
    [
        ({"queue": "no spaces"}, "queue name"),
        ({"queue": ""}, "queue name"),
        ({"queue": 7}, "queue name must be a string"),
        ({"priority": "high"}, "priority"),
        ({"priority": True}, "priority"),
        ({"partition_key": ""}, "partition key"),
        ({"partition_key": "a\x00b"}, "NUL"),
    ],
)
async def test_bad_starts_store_nothing(
    scheduler: DurableScheduler, start: dict[str, Any], problem: str
) -> None:
    with pytest.raises(zart.InvalidQueue, match=problem):
        await scheduler.start(plain_task, {"test": "bad", "name": "x"}, **start)
    assert (await scheduler.list_executions()).total == 0


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"concurrency": 0}, "concurrency must be a whole number"),
        ({"concurrency": -1}, "concurrency"),
        ({"concurrency": "3"}, "concurrency"),
        ({"partition_concurrency": 1.5}, "partition_concurrency"),
        ({"rate_limit": "fast"}, "is not 'N/period'"),
        ({"rate_limit": "0/1s"}, "at least 1"),
        ({"rate_limit": "5/0s"}, "period"),
        ({"rate_limit": "5/1y"}, "rate limit '5/1y'"),
        ({"partition_rate_limit": "often"}, "is not 'N/period'"),
        ({"partition_rate_limit": 5}, "a rate limit is a string"),
    ],
)
async def test_bad_limits_store_nothing(
    scheduler: DurableScheduler, change: dict[str, Any], problem: str
) -> None:
    with pytest.raises(zart.InvalidQueue, match=problem):
        await scheduler.set_queue("it-bad", **change)
    assert [q.name for q in await scheduler.list_queues()] == []
    with pytest.raises(zart.QueueNotFound, match="it-bad"):
        await scheduler.pause_queue("it-bad")
