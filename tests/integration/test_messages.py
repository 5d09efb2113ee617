"""Messages on both backends: FIFO per topic, kept before the recv, timeouts stored and
replayed, exactly-once sends from handlers, the caller's transaction, bad input."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

import zart
from tests.integration.runtime_helpers import count, times, wait_for_status
from zart import DurableScheduler
from zart.repositories.messages import message_name

WORKER = {"poll_interval": 0.02, "lease_timeout": 5.0, "claim_ahead": 0.0}


@zart.durable("messages-inbox")
async def inbox(data: dict[str, int]) -> list[Any]:
    got = []
    for _ in range(data["count"]):
        got.append(await zart.recv("items"))
    return got


async def test_messages_sent_before_and_during_a_recv_loop_arrive_in_order_once(
    suspending: DurableScheduler,
) -> None:
    async with suspending.run_worker(**WORKER):
        execution_id = await suspending.start(inbox, {"count": 5})
        await suspending.send(execution_id, "items", {"n": 1})
        await suspending.send(execution_id, "items", {"n": 2})
        await suspending.send(execution_id, "other", "not this topic")
        for n in (3, 4, 5):
            await wait_for_status(suspending, execution_id, zart.ExecutionStatus.WAITING)
            await suspending.send(execution_id, "items", {"n": n})
        assert await suspending.wait(execution_id, timeout=20) == [{"n": n} for n in range(1, 6)]
        events = (await suspending.execution_detail(execution_id)).events
    items = [e for e in events if e.name.startswith("zart/msg/items/")]
    assert [e.payload for e in items] == [{"n": n} for n in range(1, 6)]
    assert all(e.consumed_at is not None for e in items)
    with pytest.raises(zart.EventNotAccepted):
        await suspending.send(execution_id, "items", {"n": 6})


class Note(BaseModel):
    text: str


@zart.durable("messages-timeout")
async def timing_out(data: dict[str, float]) -> list[Any]:
    seen: list[Any] = []
    try:
        await zart.recv("late", timeout=data["seconds"])
    except zart.RecvTimeout as exc:
        seen.append(["timeout", exc.topic])
    count("after-timeout")
    seen.append((await zart.recv("late", model=Note)).text)
    return seen


async def test_a_recv_timeout_is_stored_and_the_next_recv_takes_the_next_message(
    suspending: DurableScheduler,
) -> None:
    async with suspending.run_worker(**WORKER):
        execution_id = await suspending.start(timing_out, {"seconds": 0.3})
        for _ in range(500):  # the timeout is stored, then the second recv waits
            steps = (await suspending.execution_detail(execution_id)).steps
            if len(steps) == 2:
                break
            await asyncio.sleep(0.01)
        first, second = (await suspending.execution_detail(execution_id)).steps
        assert first.step.name == message_name("late", 1)
        assert first.step.error["kind"] == "event_timeout"
        await wait_for_status(suspending, execution_id, zart.ExecutionStatus.WAITING)
        await suspending.send(execution_id, "late", Note(text="after all"))
        assert await suspending.wait(execution_id, timeout=20) == [
            ["timeout", "late"],
            "after all",
        ]
    # the second pass (woken by the message) replayed the stored timeout
    assert times(execution_id, "after-timeout") == 2
    assert second.step.name == message_name("late", 2)


@zart.step("messages-sender-effect")
async def sender_effect() -> None:
    count("sender-effect")


@zart.durable("messages-sender")
async def sender(data: dict[str, str]) -> str:
    await zart.send(data["to"], "items", {"from": zart.context().execution_id})
    await zart.send(data["to"], "items", "second")
    await sender_effect()
    await zart.sleep("after-sending", 0.05)  # suspends: a replay passes the sends again
    return "sent"


async def test_a_handler_sends_each_message_once_across_replays(
    suspending: DurableScheduler,
) -> None:
    async with suspending.run_worker(**WORKER):
        receiver = await suspending.start(inbox, {"count": 2})
        sending = await suspending.start(sender, {"to": receiver})
        assert await suspending.wait(sending, timeout=20) == "sent"
        assert await suspending.wait(receiver, timeout=20) == [{"from": sending}, "second"]
        events = (await suspending.execution_detail(receiver)).events
    assert [e.name for e in events] == [message_name("items", 1), message_name("items", 2)]
    assert {e.sender for e in events} == {sending}


async def test_a_send_in_a_transaction_that_rolls_back_delivers_nothing(
    suspending: DurableScheduler,
) -> None:
    async with suspending.run_worker(**WORKER):
        execution_id = await suspending.start(inbox, {"count": 2})
        async with AsyncSession(suspending.engine) as session, session.begin():
            await suspending.send(execution_id, "items", "kept", session=session)
        async with AsyncSession(suspending.engine) as session:
            await session.begin()
            await suspending.send(execution_id, "items", "rolled back", session=session)
            await session.rollback()
        await suspending.send(execution_id, "items", "last")
        assert await suspending.wait(execution_id, timeout=20) == ["kept", "last"]
        events = (await suspending.execution_detail(execution_id)).events
    assert [e.payload for e in events] == ["kept", "last"]
    assert [e.name for e in events] == [message_name("items", 1), message_name("items", 2)]


@zart.durable("messages-bad-send")
async def bad_send(data: dict[str, Any]) -> str:
    try:
        await zart.send(data["to"], data["topic"], data.get("message"))
    except zart.ZartError as exc:
        return type(exc).__name__
    return "sent"


async def test_bad_messages_are_refused_and_nothing_is_stored(
    suspending: DurableScheduler,
) -> None:
    async with suspending.run_worker(**WORKER):
        execution_id = await suspending.start(inbox, {"count": 1})
        with pytest.raises(zart.ExecutionNotFound):
            await suspending.send("no-such-execution", "items", 1)
        for topic in ("", "a/b", "x" * 201, "nul\x00"):
            with pytest.raises(zart.InvalidName):
                await suspending.send(execution_id, topic, 1)
        with pytest.raises(zart.SerializationError):
            await suspending.send(execution_id, "items", {"bad": float("nan")})
        with pytest.raises(zart.SerializationError):
            await suspending.send(execution_id, "items", object())
        assert not (await suspending.execution_detail(execution_id)).events
        unknown = await suspending.start(bad_send, {"to": "no-such", "topic": "items"})
        assert await suspending.wait(unknown, timeout=20) == "ExecutionNotFound"
        bad_topic = await suspending.start(bad_send, {"to": execution_id, "topic": "a/b"})
        assert await suspending.wait(bad_topic, timeout=20) == "InvalidName"
        assert not (await suspending.execution_detail(execution_id)).events
        assert not [s for s in (await suspending.execution_detail(unknown)).steps]
    with pytest.raises(zart.OutsideExecution):
        await zart.recv("items")
    with pytest.raises(zart.OutsideExecution):
        await zart.send(execution_id, "items", 1)


async def test_a_message_cannot_be_forged_as_an_event(suspending: DurableScheduler) -> None:
    async with suspending.run_worker(**WORKER):
        execution_id = await suspending.start(inbox, {"count": 1})
        with pytest.raises(zart.InvalidName):
            await suspending.offer_event(execution_id, message_name("items", 1), "forged")
        await suspending.send(execution_id, "items", "real")
        assert await suspending.wait(execution_id, timeout=20) == ["real"]


def test_timedelta_timeouts_are_accepted() -> None:
    assert zart.RecvTimeout("t", timedelta(seconds=2).total_seconds()).timeout_seconds == 2
