"""Child executions on both backends: typed results, failures, cancels, ids, bad input."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import pytest
from pydantic import BaseModel

import zart
from tests.integration.runtime_helpers import (
    arrived,
    count,
    open_gate,
    pass_gate,
    times,
    wait_for_status,
)
from zart import DurableScheduler
from zart.models.tables import ID
from zart.repositories.children import child_event_name, child_execution_id
from zart.testing import WaitingForEvent, durable_test_scheduler, run_to_completion

WORKER = {"poll_interval": 0.02, "lease_timeout": 5.0, "claim_ahead": 0.0}


async def wait_for_child(
    scheduler: DurableScheduler, execution_id: str, status: zart.ExecutionStatus
) -> zart.ExecutionRecord:
    """``wait_for_status`` for a child its parent may not have started yet."""
    for _ in range(500):
        try:
            return await wait_for_status(scheduler, execution_id, status)
        except zart.ExecutionNotFound:
            await asyncio.sleep(0.01)
    raise AssertionError(f"{execution_id} was never started")


class ChargeIn(BaseModel):
    amount: int


class Charged(BaseModel):
    amount: int
    receipt: str


class CardDeclined(Exception):
    def __init__(self, amount: int, reason: str) -> None:
        super().__init__(amount, reason)


@zart.durable("children-charge")
async def charge(data: ChargeIn) -> Charged:
    count("charge")
    if data.amount < 0:
        raise CardDeclined(data.amount, "negative")
    return Charged(amount=data.amount, receipt=f"r-{data.amount}")


@zart.durable("children-order")
async def order(data: dict[str, int]) -> dict[str, Any]:
    charged = await zart.run_child(charge, ChargeIn(amount=data["amount"]))
    count("order-after-child")
    return {"type": type(charged).__name__, "receipt": charged.receipt}


async def test_a_parent_gets_its_childs_typed_result(suspending: DurableScheduler) -> None:
    async with suspending.run_worker(**WORKER):
        parent = await suspending.start(order, {"amount": 5})
        assert await suspending.wait(parent, timeout=20) == {"type": "Charged", "receipt": "r-5"}
    child = child_execution_id(parent, 0)
    record = await suspending.status(child)
    assert record.status is zart.ExecutionStatus.COMPLETED
    assert record.parent_execution_id == parent
    assert times(child, "charge") == 1
    assert times(parent, "order-after-child") == 1
    detail = await suspending.execution_detail(parent)
    assert [c.execution_id for c in detail.children] == [child]


@zart.durable("children-catching")
async def catching(data: dict[str, int]) -> list[Any]:
    try:
        await zart.run_child(charge, ChargeIn(amount=data["amount"]))
    except CardDeclined as exc:
        return ["declined", *exc.args]
    return ["charged"]


async def test_a_failing_childs_exception_reaches_the_parent(suspending: DurableScheduler) -> None:
    async with suspending.run_worker(**WORKER):
        parent = await suspending.start(catching, {"amount": -3})
        assert await suspending.wait(parent, timeout=20) == ["declined", -3, "negative"]
        failing = await suspending.start(order, {"amount": -4})
        with pytest.raises(zart.ExecutionFailed) as failed:
            await suspending.wait(failing, timeout=20)
    assert failed.value.error["kind"] == "step_failed"
    assert "CardDeclined" in failed.value.error["error"]["type"]


@zart.durable("children-slow")
async def slow(data: dict[str, str]) -> str:
    await zart.wait_for_event("never")
    return "done"


@zart.durable("children-waiting-parent")
async def waiting_parent(data: dict[str, str]) -> str:
    keep = await zart.start_child(
        slow, {}, f"{zart.context().execution_id}-kept", parent_close="abandon"
    )
    handle = await zart.start_child(slow, {})
    await asyncio.gather(handle.result(), keep.result())
    return "never"


async def test_cancelling_a_parent_cancels_its_children(suspending: DurableScheduler) -> None:
    async with suspending.run_worker(**WORKER):
        parent = await suspending.start(waiting_parent, {})
        await wait_for_status(suspending, parent, zart.ExecutionStatus.WAITING)
        child = child_execution_id(parent, 1)
        await wait_for_child(suspending, child, zart.ExecutionStatus.WAITING)
        assert await suspending.cancel(parent)
        assert (await suspending.status(child)).status is zart.ExecutionStatus.CANCELLED
        kept = await suspending.status(f"{parent}-kept")
        assert kept.status is not zart.ExecutionStatus.CANCELLED


@zart.durable("children-of-cancelled")
async def parent_of_cancelled(data: dict[str, str]) -> str:
    try:
        await zart.run_child(slow, {})
    except zart.ChildFailed as exc:
        return exc.status
    return "finished"


async def test_a_cancelled_child_raises_child_failed_in_its_parent(
    suspending: DurableScheduler,
) -> None:
    async with suspending.run_worker(**WORKER):
        parent = await suspending.start(parent_of_cancelled, {})
        child = child_execution_id(parent, 0)
        await wait_for_child(suspending, child, zart.ExecutionStatus.WAITING)
        assert await suspending.cancel(child)
        assert await suspending.wait(parent, timeout=20) == "cancelled"


async def test_the_childs_result_cannot_be_offered_from_outside(
    suspending: DurableScheduler,
) -> None:
    async with suspending.run_worker(**WORKER):
        parent = await suspending.start(parent_of_cancelled, {})
        child = child_execution_id(parent, 0)
        await wait_for_status(suspending, parent, zart.ExecutionStatus.WAITING)
        forged = {"status": "completed", "result": "forged", "error": None}
        with pytest.raises(zart.InvalidName):
            await suspending.offer_event(parent, child_event_name(child), forged)
        assert await suspending.cancel(parent)
    assert not (await suspending.execution_detail(parent)).events


def test_child_ids_fit_the_id_columns() -> None:
    long_parent = "p" * ID
    assert len(child_execution_id(long_parent, 12345)) <= ID
    assert child_execution_id(long_parent, 1) != child_execution_id(long_parent, 2)
    assert child_execution_id("p" * 200, 1) != child_execution_id("p" * 201, 1)
    assert len(child_event_name("c" * ID)) <= ID
    assert child_execution_id("order-1", 3) == "order-1.child-3"


@zart.durable("children-bad-input")
async def bad_input(data: dict[str, Any]) -> str:
    try:
        await zart.start_child(charge, data["payload"], data.get("id"))
    except (zart.InvalidPayload, zart.ConfigurationError) as exc:
        return type(exc).__name__
    return "started"


async def test_bad_child_input_is_refused_and_starts_nothing(suspending: DurableScheduler) -> None:
    async with suspending.run_worker(**WORKER):
        bad_payload = await suspending.start(bad_input, {"payload": {"amount": "x"}})
        assert await suspending.wait(bad_payload, timeout=20) == "InvalidPayload"
        bad_id = await suspending.start(bad_input, {"payload": {"amount": 1}, "id": "a/b"})
        assert await suspending.wait(bad_id, timeout=20) == "InvalidName"
    page = await suspending.list_executions(task_name="children-charge")
    assert page.total == 0
    with pytest.raises(zart.OutsideExecution):
        await zart.run_child(charge, ChargeIn(amount=1))


@zart.step("children-gated")
async def gated() -> str:
    await pass_gate()
    return "finished"


@zart.durable("children-gated-child")
async def gated_child(data: dict[str, str]) -> str:
    return await gated()


@zart.durable("children-gated-parent")
async def gated_parent(data: dict[str, str]) -> str:
    return await zart.run_child(gated_child, {}, data["child"])


async def test_children_finishing_while_their_parents_are_cancelled_do_not_deadlock(
    suspending: DurableScheduler, caplog: pytest.LogCaptureFixture
) -> None:
    """The child's finish locks the parent row then its own; the parent's cancel its own row
    then the child's: the same order, so both at once never wait for each other in a cycle
    (a deadlock would fail a cancel here, or show as a finish_failed log line)."""
    pairs = [(f"gp-{n}-{uuid.uuid4()}", f"gc-{n}-{uuid.uuid4()}") for n in range(20)]
    gates = [open_gate(child) for _, child in pairs]
    with caplog.at_level(logging.INFO, logger="zart"):
        async with suspending.run_worker(**WORKER, concurrency=64):
            for parent, child in pairs:
                await suspending.start(gated_parent, {"child": child}, execution_id=parent)
            for _, child in pairs:
                await arrived_at_gate(child)

            async def release(gate: asyncio.Event) -> None:
                gate.set()

            cancels = [suspending.cancel(parent) for parent, _ in pairs]
            done = await asyncio.gather(*cancels, *(release(gate) for gate in gates))
            for (parent, child), cancelled in zip(pairs, done, strict=False):
                await wait_for_terminal(suspending, parent)
                await wait_for_terminal(suspending, child)
                status = (await suspending.status(parent)).status
                # a parent that finished first (its child done) was not cancelled
                assert status is (
                    zart.ExecutionStatus.CANCELLED if cancelled else zart.ExecutionStatus.COMPLETED
                )
    actions = {getattr(r, "action", None) for r in caplog.records}
    assert not actions & {"finish_failed", "execution_crashed", "internal_error"}


async def arrived_at_gate(execution_id: str) -> None:
    for _ in range(1000):
        if execution_id in arrived and arrived[execution_id].is_set():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{execution_id} never reached its gate")


async def wait_for_terminal(scheduler: DurableScheduler, execution_id: str) -> None:
    for _ in range(1000):
        if (await scheduler.status(execution_id)).is_terminal:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{execution_id} never finished")


@zart.durable("children-bounded-parent", timeout="1h")
async def bounded_parent(data: dict[str, Any]) -> str:
    try:
        await zart.start_child(slow, {}, data.get("id"))
    except zart.ExecutionAlreadyExists:
        return "refused"
    return "started"


async def test_the_parents_deadline_bounds_the_childs_and_a_foreign_id_is_refused(
    suspending: DurableScheduler,
) -> None:
    async with suspending.run_worker(**WORKER):
        parent = await suspending.start(bounded_parent, {})
        assert await suspending.wait(parent, timeout=20) == "started"
        child = await suspending.status(child_execution_id(parent, 0))
        assert child.deadline_at == (await suspending.status(parent)).deadline_at
        assert child.deadline_at is not None
        stranger = await suspending.start(slow, {}, execution_id=f"stranger-{uuid.uuid4()}")
        refused = await suspending.start(bounded_parent, {"id": stranger})
        assert await suspending.wait(refused, timeout=20) == "refused"
        assert (await suspending.status(stranger)).parent_execution_id is None
        for execution_id in (stranger, child.execution_id):
            await suspending.cancel(execution_id)


@zart.durable("children-napping-child")
async def napping_child(n: int) -> int:
    await zart.sleep("nap", "1h")
    return n * 2


@zart.durable("children-napping-parent")
async def napping_parent(n: int) -> list[Any]:
    doubled = await zart.run_child(napping_child, n)
    try:
        await zart.recv("go", timeout="1d")
    except zart.RecvTimeout:
        return [doubled, "no go"]
    return [doubled, "go"]


@zart.durable("children-inbox")
async def inbox_without_timeout(data: dict[str, str]) -> Any:
    return await zart.recv("go")


async def test_run_to_completion_skips_the_time_a_parents_children_wait(
    database_url: str,
) -> None:
    async with durable_test_scheduler(database_url) as scheduler:
        parent = await scheduler.start(napping_parent, 3)
        assert await run_to_completion(scheduler, parent, timeout=60) == [6, "no go"]
        inbox_id = await scheduler.start(inbox_without_timeout, {})
        with pytest.raises(WaitingForEvent, match=r"scheduler\.send\(.*'go', message\)"):
            await run_to_completion(scheduler, inbox_id, timeout=60)


async def test_a_restarted_parent_starts_new_children(suspending: DurableScheduler) -> None:
    async with suspending.run_worker(**WORKER):
        parent = await suspending.start(order, {"amount": 2})
        assert await suspending.wait(parent, timeout=20) == {"type": "Charged", "receipt": "r-2"}
        await suspending.restart(parent)
        assert await suspending.wait(parent, timeout=20) == {"type": "Charged", "receipt": "r-2"}
        children = (await suspending.execution_detail(parent)).children
    assert [c.execution_id for c in children] == [
        child_execution_id(parent, 0),
        child_execution_id(parent, 0, 2),
    ]
    assert child_execution_id(parent, 0, 2) == f"{parent}.r2.child-0"
