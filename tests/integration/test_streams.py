"""Published values and durable streams on both backends: ``zart.publish`` and
``get_published``; ``zart.write_stream`` / ``close_stream`` and ``read_stream`` followed live
from another scheduler (NOTIFY on PostgreSQL, polling on SQLite), across disconnects and
replays; bad input refused; pruning takes the rows with the execution."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import func, select, update

import zart
from tests.factories import T0, claim_only, completed_step, new_execution, run_on
from tests.integration.runtime_helpers import FAST_WORKER, wait_for_status
from zart import DurableScheduler, ExecutionStatus
from zart.errors import LeaseLost
from zart.models import ExecutionRow, PublishedRow, StreamItemRow, table_of
from zart.repositories import streams as streams_repo
from zart.repositories import wakeups
from zart.repositories.records import Lease
from zart.repositories.store import Store

EXECUTIONS = table_of(ExecutionRow)
PUBLISHED = table_of(PublishedRow)
ITEMS = table_of(StreamItemRow)


class Progress(BaseModel):
    done: int


# -- published values ------------------------------------------------------------------------


@zart.durable("streams-progress")
async def progress(data: dict[str, Any]) -> str:
    await zart.publish("progress", Progress(done=1))
    await zart.publish("progress", Progress(done=2))
    await zart.wait_for_event("go")  # suspends: the resume replays both publishes
    await zart.publish("progress", {"done": 3})
    await zart.publish("other", "x")
    return "done"


async def _published_rows(scheduler: DurableScheduler, execution_id: str) -> dict[str, Any]:
    async with scheduler.engine.connect() as conn:
        rows = await conn.execute(
            select(PUBLISHED.c.key, PUBLISHED.c.value, PUBLISHED.c.version).where(
                PUBLISHED.c.execution_id == execution_id
            )
        )
        return {r.key: (r.value, r.version) for r in rows}


async def test_a_published_value_is_read_from_outside_and_replays_do_not_publish_again(
    scheduler: DurableScheduler, database_url: str
) -> None:
    async with DurableScheduler(database_url) as outside:
        execution_id = await outside.start(progress, {})
        # Waiting before anything is published: woken by the first publish.
        waiting = asyncio.ensure_future(outside.get_published(execution_id, "other", timeout=30))
        async with scheduler.run_worker(**FAST_WORKER):
            await wait_for_status(scheduler, execution_id, ExecutionStatus.WAITING)
            assert await outside.get_published(execution_id, "progress") == {"done": 2}
            assert not waiting.done()
            await outside.offer_event(execution_id, "go", None)
            assert await waiting == "x"
            assert await outside.wait(execution_id, timeout=30) == "done"
        assert await outside.get_published(execution_id, "progress", timeout=0) == {"done": 3}
    # Three publishes of "progress" in all: the replay after the event published nothing.
    assert await _published_rows(scheduler, execution_id) == {
        "progress": ({"done": 3}, 3),
        "other": ("x", 1),
    }


@zart.durable("streams-quiet")
async def quiet(data: dict[str, Any]) -> None:
    await zart.wait_for_event("go")


async def test_get_published_refuses_clearly(scheduler: DurableScheduler) -> None:
    execution_id = await scheduler.start(quiet, {})
    with pytest.raises(zart.PublishedValueTimeout, match="published no value under 'k'"):
        await scheduler.get_published(execution_id, "k", timeout=0.05)
    with pytest.raises(zart.ExecutionNotFound):
        await scheduler.get_published("no-such-execution", "k", timeout=1)
    with pytest.raises(zart.InvalidName, match="published key"):
        await scheduler.get_published(execution_id, "a/b")
    with pytest.raises(zart.InvalidName, match="published key"):
        await scheduler.get_published(execution_id, "")
    for timeout in (-1, float("nan"), "5", True):
        with pytest.raises(zart.InvalidPayload, match="timeout must be None or seconds"):
            await scheduler.get_published(execution_id, "k", timeout=timeout)  # type: ignore[arg-type]
    await scheduler.cancel(execution_id)
    with pytest.raises(zart.NothingPublished, match="cancelled and published no value"):
        await scheduler.get_published(execution_id, "k")


@zart.durable("streams-bad-values")
async def bad_values(data: dict[str, Any]) -> list[str]:
    refused = []
    for key, value in [("k", object()), ("k", float("nan")), ("a/b", 1), ("x" * 201, 1)]:
        try:
            await zart.publish(key, value)
        except zart.InvalidPayload as exc:
            refused.append(type(exc).__name__)
        try:
            await zart.write_stream(key, value)
        except zart.InvalidPayload as exc:
            refused.append(type(exc).__name__)
    await zart.write_stream("s", 1)
    await zart.close_stream("s")
    try:
        await zart.write_stream("s", 2)
    except zart.StreamClosed as exc:
        refused.append(str(exc))
    return refused


@zart.step("streams-inside-a-step")
async def inside_a_step() -> None:
    await zart.publish("k", 1)


@zart.durable("streams-in-step")
async def in_step(data: dict[str, Any]) -> None:
    await inside_a_step()


async def test_bad_keys_and_values_are_refused_and_nothing_is_stored(
    scheduler: DurableScheduler,
) -> None:
    with pytest.raises(zart.OutsideExecution):
        await zart.publish("k", 1)
    with pytest.raises(zart.OutsideExecution):
        await zart.write_stream("k", 1)
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await scheduler.start(bad_values, {})
        refused = await scheduler.wait(execution_id, timeout=30)
        failing = await scheduler.start(in_step, {})
        with pytest.raises(zart.ExecutionFailed, match="not inside a step"):
            await scheduler.wait(failing, timeout=30)
    assert refused == ["SerializationError"] * 4 + ["InvalidName"] * 4 + [
        f"stream 's' of execution {execution_id!r} is closed"
    ]
    assert await _published_rows(scheduler, execution_id) == {}
    assert [item async for item in scheduler.read_stream(execution_id, "s")] == [1]


# -- streams ---------------------------------------------------------------------------------


@zart.durable("streams-tokens")
async def tokens(data: dict[str, Any]) -> int:
    for batch in range(data["batches"]):
        for i in range(3):
            await zart.write_stream("tokens", {"n": batch * 3 + i})
        if batch < data["batches"] - 1:
            await zart.wait_for_event(f"more-{batch}")  # suspends; the resume replays
    if data.get("close", True):
        await zart.close_stream("tokens")
    return data["batches"] * 3


async def _stream_rows(scheduler: DurableScheduler, execution_id: str) -> list[tuple[Any, ...]]:
    async with scheduler.engine.connect() as conn:
        rows = await conn.execute(
            select(ITEMS.c.offset, ITEMS.c.value, ITEMS.c.closed)
            .where(ITEMS.c.execution_id == execution_id)
            .order_by(ITEMS.c.offset)
        )
        return [tuple(r) for r in rows]


async def test_a_late_reader_that_reconnects_sees_every_item_once_in_order(
    scheduler: DurableScheduler, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams_repo, "READ_BATCH", 2)  # several reads per burst of items
    seen: list[int] = []
    async with DurableScheduler(database_url) as outside:
        execution_id = await outside.start(tokens, {"batches": 4})
        async with scheduler.run_worker(**FAST_WORKER):
            await wait_for_status(scheduler, execution_id, ExecutionStatus.WAITING)
            # Connects late (3 items written), follows live, disconnects after 5.
            entries = outside.stream_entries(execution_id, "tokens")
            async for offset, item in entries:
                assert offset == len(seen)
                seen.append(item["n"])
                if len(seen) == 3:
                    await outside.offer_event(execution_id, "more-0", None)
                if len(seen) == 5:
                    break
            await entries.aclose()  # type: ignore[attr-defined]
            # Reconnects from the last offset it saw + 1, and follows to the close.
            async for item in outside.read_stream(execution_id, "tokens", offset=len(seen)):
                seen.append(item["n"])
                if len(seen) in (6, 9):
                    await outside.offer_event(execution_id, f"more-{len(seen) // 3 - 1}", None)
            assert await outside.wait(execution_id, timeout=30) == 12
        # Read again from anywhere once finished: the stored log.
        again = [item["n"] async for item in outside.read_stream(execution_id, "tokens", 10)]
    assert seen == list(range(12))
    assert again == [10, 11]
    # Written once each (three replays went over the earlier writes), then the close marker.
    rows = await _stream_rows(scheduler, execution_id)
    assert rows == [(n, {"n": n}, False) for n in range(12)] + [(12, None, True)]


async def test_a_stream_left_open_ends_when_its_execution_finishes(
    scheduler: DurableScheduler, database_url: str
) -> None:
    async with DurableScheduler(database_url) as outside:
        execution_id = await outside.start(tokens, {"batches": 2, "close": False})
        async with scheduler.run_worker(**FAST_WORKER):
            seen = []
            async for item in outside.read_stream(execution_id, "tokens"):
                seen.append(item["n"])
                if len(seen) == 3:
                    await outside.offer_event(execution_id, "more-0", None)
        assert seen == list(range(6))
        # A key never written: ends at once for a finished execution.
        assert [item async for item in outside.read_stream(execution_id, "never")] == []


async def test_read_stream_refuses_clearly(scheduler: DurableScheduler) -> None:
    execution_id = await scheduler.start(quiet, {})
    with pytest.raises(zart.ExecutionNotFound):
        await anext(scheduler.read_stream("no-such-execution", "k"))
    for offset in (-1, 1.5, "3", True, None):
        with pytest.raises(zart.InvalidPayload, match="offset must be a whole number"):
            scheduler.read_stream(execution_id, "k", offset=offset)  # type: ignore[arg-type]
    with pytest.raises(zart.InvalidName, match="stream key"):
        scheduler.read_stream(execution_id, "a/b")
    with pytest.raises(zart.InvalidName, match="execution id"):
        scheduler.read_stream("", "k")


async def test_pruning_an_execution_deletes_its_streams_and_published_values(
    scheduler: DurableScheduler,
) -> None:
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await scheduler.start(tokens, {"batches": 1})
        kept = await scheduler.start(tokens, {"batches": 1})
        published = await scheduler.start(progress, {})
        await scheduler.offer_event(published, "go", None)
        for done in (execution_id, kept, published):
            await scheduler.wait(done, timeout=30)
    async with scheduler.engine.begin() as conn:
        await conn.execute(
            update(EXECUTIONS)
            .where(EXECUTIONS.c.execution_id.in_([execution_id, published]))
            .values(completed_at=scheduler.clock.now() - timedelta(days=2))
        )
    assert (await scheduler.prune("1d")).deleted == 2
    async with scheduler.engine.connect() as conn:
        left = await conn.execute(
            select(ITEMS.c.execution_id, func.count()).group_by(ITEMS.c.execution_id)
        )
        assert {row[0]: row[1] for row in left} == {kept: 4}
        assert await conn.scalar(select(func.count()).select_from(PUBLISHED)) == 0


# -- what wakes a reader -------------------------------------------------------------------


@pytest.mark.postgresql_only
async def test_on_postgresql_a_reader_elsewhere_is_woken_by_notify(
    scheduler: DurableScheduler, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No re-read on a timer: only a notification can bring the reader the next item.
    monkeypatch.setattr(zart.scheduler.streams, "RECHECK_LISTENING", 3600.0)
    monkeypatch.setattr(zart.scheduler.streams, "LISTEN_LINGER", 0.0)
    async with DurableScheduler(database_url) as outside:
        execution_id = await outside.start(tokens, {"batches": 2})
        seen = []
        async with scheduler.run_worker(**FAST_WORKER):
            await wait_for_status(scheduler, execution_id, ExecutionStatus.WAITING)
            async for item in outside.read_stream(execution_id, "tokens"):
                hub = outside._stream_hub
                assert hub is not None
                assert hub.listening.is_set()
                seen.append(item["n"])
                if len(seen) == 3:
                    await outside.offer_event(execution_id, "more-0", None)
        assert seen == list(range(6))
        # A published value too: "other" comes after the event, and only NOTIFY says so.
        published = await outside.start(progress, {})
        waiting = asyncio.ensure_future(outside.get_published(published, "other"))
        async with scheduler.run_worker(**FAST_WORKER):
            await wait_for_status(scheduler, published, ExecutionStatus.WAITING)
            await outside.offer_event(published, "go", None)
            assert await waiting == "x"
        assert hub._listener is not None
        await asyncio.wait([hub._listener], timeout=10)  # the last reader left: it stops
        assert hub._listener.done()
        assert not hub.listening.is_set()


async def test_a_reader_beside_the_worker_is_woken_by_its_runs(
    scheduler: DurableScheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No polling worth the name, and no listener: only the in-process wake-up can do it.
    monkeypatch.setattr(zart.scheduler.polling, "FIRST_PAUSE", 3600.0)
    monkeypatch.setattr(zart.scheduler.streams, "RECHECK_LISTENING", 3600.0)
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await scheduler.start(tokens, {"batches": 2})
        waiting = asyncio.ensure_future(scheduler.get_published(execution_id, "never"))
        seen = []
        async for item in scheduler.read_stream(execution_id, "tokens"):
            seen.append(item["n"])
            if len(seen) == 3:
                await scheduler.offer_event(execution_id, "more-0", None)
        assert seen == list(range(6))
        with pytest.raises(zart.NothingPublished):  # woken by the run's end
            await waiting


async def test_a_restart_continues_the_stream_its_first_run_closed(
    scheduler: DurableScheduler,
) -> None:
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await scheduler.start(tokens, {"batches": 1})
        await scheduler.wait(execution_id, timeout=30)
        ended_at = len([item async for item in scheduler.read_stream(execution_id, "tokens")])
        await scheduler.restart(execution_id)
        assert await scheduler.wait(execution_id, timeout=30) == 3
        # A reader that saw the first run's end resumes where it stood.
        resumed = [item["n"] async for item in scheduler.read_stream(execution_id, "tokens", 3)]
    assert ended_at == 3
    assert resumed == [0, 1, 2]  # the second run's items, after the first run's
    rows = await _stream_rows(scheduler, execution_id)
    assert [row[2] for row in rows] == [False] * 6 + [True]


# -- the write and its checkpoint are one transaction ------------------------------------------


async def test_a_write_whose_checkpoint_is_refused_leaves_no_item(store: Store) -> None:
    """A fenced-out worker (or one that dies before its commit) leaves neither the item nor
    the step: the append and the checkpoint commit together or not at all."""
    record = await new_execution(store)
    lease = await claim_only(store, record.execution_id)
    channel = streams_repo.channel_for(wakeups.CHANNEL)

    def write(name: str, position: int, holder: Lease) -> Any:
        outcome = completed_step(record.run_id, name, None, position)
        return run_on(
            store,
            streams_repo.append_stream_item,
            holder,
            outcome,
            key="k",
            value={"n": position},
            closing=False,
            now=T0,
            channel=channel,
        )

    first = await write("stream:k#0", 0, lease)
    assert first.result == {"offset": 0}
    stale = Lease(lease.execution_id, "not-the-token", lease.owner, lease.expires_at)
    with pytest.raises(LeaseLost):
        await write("stream:k#1", 1, stale)
    with pytest.raises(LeaseLost):
        await run_on(
            store,
            streams_repo.publish_value,
            stale,
            completed_step(record.run_id, "publish:p#0", None, 2),
            key="p",
            value=1,
            now=T0,
            channel=channel,
        )
    # The same name again, with the lease: the step was never stored, nor the item.
    second = await write("stream:k#1", 1, lease)
    assert second.result == {"offset": 1}
    items = await run_on(store, streams_repo.read_stream_items, record.execution_id, "k", offset=0)
    assert [(item.offset, item.value) for item in items] == [(0, {"n": 0}), (1, {"n": 1})]
    assert await run_on(store, streams_repo.get_published, record.execution_id, "p") is None
