"""Replay: finished steps never run again, stored failures come back as they were, and values
come back equal and of the same type."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

import zart
from tests.factories import run_on
from tests.integration.runtime_helpers import (
    FAST_WORKER,
    arrived,
    count,
    open_gate,
    pass_gate,
    seen,
    times,
)
from zart import DurableScheduler


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Size(enum.IntEnum):
    SMALL = 1


class Money(BaseModel):
    amount: Decimal
    currency: str
    extra: Any = None


@dataclasses.dataclass(frozen=True)
class Shipment:
    id: uuid.UUID
    parcels: tuple[int, ...]
    price: Money


class CardDeclined(Exception):
    def __init__(self, reason: str, code: int) -> None:
        super().__init__(reason, code)
        self.reason = reason
        self.code = code


VALUES: dict[str, Any] = {
    "none": None,
    "bool": True,
    "int": 2**70,
    "float": 1.5,
    "str": "héllo",
    "list": [1, "two", [3.0]],
    "dict": {"a": {"b": [1, 2]}},
    "tuple": (1, ("nested", 2)),
    "datetime": datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
    "naive_datetime": datetime(2026, 3, 29, 1, 30),
    "date": date(2026, 2, 28),
    "time": time(23, 59, 58, 1000),
    "timedelta": timedelta(days=2, microseconds=5),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "decimal": Decimal("10.005"),
    "bytes": b"\x00\xffraw",
    "enum": Color.BLUE,
    "int_enum": Size.SMALL,
    "model": Money(amount=Decimal("9.99"), currency="EUR", extra=(1, 2)),
    "dataclass": Shipment(
        uuid.UUID(int=7), (1, 2), Money(amount=Decimal(1), currency="USD", extra={"k": b"v"})
    ),
    "set": {1, 2, 3},
}


@zart.step("produce-{kind}")
async def produce(kind: str):  # no annotation on purpose: replay must not need one
    count(f"produce-{kind}")
    return VALUES[kind]


@zart.step("gated")
async def gated() -> str:
    count("gated")
    await pass_gate()
    return "done"


@zart.step("charge-card")
async def charge_card(amount: int) -> str:
    count("charge-card")
    raise CardDeclined("insufficient funds", 51)


@zart.durable("replay-typed-values")
async def typed_values(data: dict[str, Any]) -> str:
    execution_id = zart.context().execution_id
    for kind in VALUES:
        seen[execution_id].append((kind, await produce(kind)))
    try:
        await charge_card(10)
    except CardDeclined as error:
        seen[execution_id].append(("error", type(error), error.args, error.code))
    seen[execution_id].append(("captured", await zart.capture("token", lambda: uuid.uuid4())))
    seen[execution_id].append(("now", await zart.now("created-at")))
    return await gated()


def _same(left: Any, right: Any) -> bool:
    if type(left) is not type(right):
        return False
    if isinstance(left, list | tuple):
        return len(left) == len(right) and all(map(_same, left, right))
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_same(left[k], right[k]) for k in left)
    return bool(left == right)


async def _interrupt_and_resume(scheduler: DurableScheduler, execution_id: str) -> None:
    """Stop the worker while the execution waits at its gate, then let a new worker replay."""
    async with scheduler.run_worker(**FAST_WORKER) as first:
        await asyncio.wait_for(arrived[execution_id].wait(), 10)
        await first.stop(timeout=0)  # cancels the run and hands its lease back
    status = await scheduler.status(execution_id)
    assert status.status is zart.ExecutionStatus.SCHEDULED
    open_gate(execution_id).set()
    async with scheduler.run_worker(**FAST_WORKER):
        await scheduler.wait(execution_id, timeout=10)


async def test_replay_returns_equal_values_of_the_same_type(scheduler: DurableScheduler) -> None:
    execution_id = f"typed-{uuid.uuid4()}"
    open_gate(execution_id)
    await scheduler.start(typed_values, {}, execution_id=execution_id)

    await _interrupt_and_resume(scheduler, execution_id)

    passes = seen[execution_id]
    half = len(passes) // 2
    first, second = passes[:half], passes[half:]
    assert [entry[0] for entry in first] == [*VALUES, "error", "captured", "now"]
    for before, after in zip(first, second, strict=True):
        assert _same(before, after), (before, after)
    for kind, value in first[: len(VALUES)]:
        assert _same(value, VALUES[kind]), kind
    assert first[len(VALUES)] == ("error", CardDeclined, ("insufficient funds", 51), 51)


async def test_finished_steps_never_run_again(scheduler: DurableScheduler) -> None:
    execution_id = f"once-{uuid.uuid4()}"
    open_gate(execution_id)
    await scheduler.start(typed_values, {}, execution_id=execution_id)

    await _interrupt_and_resume(scheduler, execution_id)

    assert all(times(execution_id, f"produce-{kind}") == 1 for kind in VALUES)
    assert times(execution_id, "charge-card") == 1
    # The step in flight when the worker stopped ran again: at-least-once for it alone.
    assert times(execution_id, "gated") == 2
    record = await scheduler.status(execution_id)
    assert record.status is zart.ExecutionStatus.COMPLETED
    assert record.claim_count == 2
    assert await scheduler.wait(execution_id) == "done"


@zart.step("send-email")
async def send_email(to: str) -> str:
    count(f"email-{to}")
    return to


@zart.durable("replay-duplicate-names")
async def duplicate_names(data: dict[str, Any]) -> None:
    await send_email("a")
    await send_email("b")  # same step name twice


@zart.durable("replay-capture-clash")
async def capture_clash(data: dict[str, Any]) -> None:
    await send_email("a")
    await zart.capture("send-email", lambda: 1)


@pytest.mark.parametrize("handler", [duplicate_names, capture_clash])
async def test_one_name_used_twice_fails_the_execution(
    scheduler: DurableScheduler, handler: zart.DurableHandler[..., Any]
) -> None:
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await scheduler.start(handler, {})
        with pytest.raises(zart.ExecutionFailed) as failed:
            await scheduler.wait(execution_id, timeout=10)

    error = failed.value.error
    assert error["kind"] == "handler_failed"
    assert error["error"]["type"].endswith("DuplicateStepName")
    assert "send-email" in error["message"]
    assert times(execution_id, "email-b") == 0


@zart.step("report-{index}")
async def process_report(index: int, title: str) -> str:
    count(f"report-{index}")
    return title.upper()


@zart.step("notify")
async def notify(title: str) -> None:
    count(f"notify-{title}")


@zart.durable("replay-durable-loop")
async def durable_loop(data: dict[str, Any]) -> list[str]:
    titles = [await process_report(i, title) for i, title in enumerate(data["titles"])]
    for i, title in enumerate(titles):
        await notify(title).named(f"notify-{i}")
    return titles


async def test_loops_name_each_iteration(scheduler: DurableScheduler) -> None:
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await scheduler.start(durable_loop, {"titles": ["q1", "q2", "q3"]})
        result = await scheduler.wait(execution_id, timeout=10)

    assert result == ["Q1", "Q2", "Q3"]
    async with scheduler.engine.connect() as conn:
        from zart.repositories import steps

        names = [
            s.name
            for s in await run_on(
                conn, steps.list_steps, (await scheduler.status(execution_id)).run_id
            )
        ]
    assert names == ["report-0", "report-1", "report-2", "notify-0", "notify-1", "notify-2"]
