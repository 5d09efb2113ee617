"""``@zart.durable(..., on_cancel=fn)``: cancelling an execution a worker had begun starts its
compensation, in the cancel's transaction, as a durable execution of its own."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

import zart
from tests.integration.runtime_helpers import FAST_WORKER, wait_for_status
from zart import DurableScheduler
from zart.repositories import executions as executions_repo
from zart.repositories import workers as workers_repo
from zart.runtime.registry import find_handler

#: order id -> what happened to it, in order (reserved, released...)
journal: defaultdict[str, list[str]] = defaultdict(list)
#: compensation execution id -> what zart.context() said inside it
contexts: dict[str, zart.ExecutionInfo] = {}


class Order(BaseModel):
    order_id: str
    items: int = 1


@zart.step("reserve-stock")
async def reserve_stock(order_id: str) -> None:
    journal[order_id].append("reserved")


@zart.step("release-stock")
async def release_stock(order_id: str) -> None:
    journal[order_id].append("released")


async def release(order):  # type: ignore[no-untyped-def]  # unannotated: takes an Order all the same
    assert isinstance(order, Order)
    contexts[zart.context().execution_id] = zart.context()
    await release_stock(order.order_id)
    return {"released": order.order_id}


@zart.durable("on-cancel-order", on_cancel=release)
async def place_order(order: Order) -> str:
    await reserve_stock(order.order_id)
    await zart.wait_for_event("payment", timeout=timedelta(days=1))
    return "paid"


async def refuse(order: Order) -> None:
    journal[order.order_id].append("compensation tried")
    raise RuntimeError("the warehouse is closed")


@zart.durable("on-cancel-failing", on_cancel=refuse)
async def failing_compensation(order: Order) -> str:
    await reserve_stock(order.order_id)
    await zart.wait_for_event("payment", timeout=timedelta(days=1))
    return "paid"


async def _in_transaction(store: Any, operation: Any, *args: Any, **kwargs: Any) -> Any:
    async with store.transaction() as db:
        return await db.run(operation, *args, **kwargs)


async def _begun(scheduler: DurableScheduler, handler: Any, order_id: str) -> str:
    """An execution of ``handler`` that a worker began and that now waits for its payment."""
    execution_id = await scheduler.start(handler, Order(order_id=order_id))
    await wait_for_status(scheduler, execution_id, zart.ExecutionStatus.WAITING)
    return execution_id


async def test_cancelling_a_begun_execution_runs_its_compensation(
    suspending: DurableScheduler,
) -> None:
    scheduler = suspending
    order_id = f"order-{id(scheduler)}"
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await _begun(scheduler, place_order, order_id)
        assert await scheduler.cancel(execution_id) is True

        cancelled = await scheduler.status(execution_id)
        compensation_id = cancelled.compensation_id
        assert compensation_id is not None
        assert await scheduler.wait(compensation_id, timeout=10) == {"released": order_id}

    assert cancelled.status is zart.ExecutionStatus.CANCELLED
    assert journal[order_id] == ["reserved", "released"]
    compensation = await scheduler.status(compensation_id)
    assert compensation.task_name == "on-cancel-order:on_cancel"
    assert compensation.compensates == execution_id
    assert compensation.payload == cancelled.payload
    assert contexts[compensation_id].compensates == execution_id
    # The cancelled execution is left as it was: cancelled, and cancelling again does nothing.
    assert await scheduler.cancel(execution_id) is False
    assert (await scheduler.status(execution_id)).status is zart.ExecutionStatus.CANCELLED
    assert (await scheduler.list_executions(task_name=compensation.task_name)).total == 1


async def test_an_execution_no_worker_began_is_cancelled_without_compensation(
    scheduler: DurableScheduler,
) -> None:
    execution_id = await scheduler.start(place_order, Order(order_id="never-begun"))
    assert await scheduler.cancel(execution_id) is True

    assert (await scheduler.status(execution_id)).compensation_id is None
    assert (await scheduler.list_executions(task_name="on-cancel-order:on_cancel")).total == 0
    assert journal["never-begun"] == []


async def test_a_failed_compensation_is_a_failed_execution_and_the_cancel_stands(
    suspending: DurableScheduler,
) -> None:
    scheduler = suspending
    order_id = f"closed-{id(scheduler)}"
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await _begun(scheduler, failing_compensation, order_id)
        await scheduler.cancel(execution_id)
        compensation_id = (await scheduler.status(execution_id)).compensation_id
        assert compensation_id is not None
        with pytest.raises(zart.ExecutionFailed, match="the warehouse is closed"):
            await scheduler.wait(compensation_id, timeout=10)

    assert (await scheduler.status(compensation_id)).status is zart.ExecutionStatus.FAILED
    assert (await scheduler.status(execution_id)).status is zart.ExecutionStatus.CANCELLED
    assert journal[order_id] == ["reserved", "compensation tried"]


async def test_a_process_without_the_handler_learns_of_on_cancel_from_live_workers(
    scheduler: DurableScheduler,
) -> None:
    """``zart cancel`` and the HTTP API import no handlers: the compensation task is then
    known from the workers alive that run it, and unknown when none does."""
    store = scheduler.store
    now = scheduler.clock.now()

    async def remote_worker(*task_names: str) -> None:
        await _in_transaction(
            store,
            workers_repo.register_worker,
            worker_id="remote-worker",
            hostname="elsewhere",
            pid=1,
            task_names=task_names,
            concurrency=1,
            now=now,
        )

    await remote_worker("some-remote-task")
    begun = [await scheduler.start("some-remote-task", {"n": 1}) for _ in range(2)]
    async with scheduler.engine.begin() as conn:  # both begun by the remote worker
        await conn.exec_driver_sql(
            "UPDATE zart_executions SET claim_count = 1, status = 'running'"
            " WHERE task_name = 'some-remote-task'"
        )
    # No live worker runs "some-remote-task:on_cancel": nothing to compensate.
    first = await _in_transaction(
        store,
        executions_repo.cancel_execution,
        begun[0],
        now=now,
        seen_since=now - timedelta(minutes=2),
    )
    assert first is not None
    assert first.compensation_id is None

    await remote_worker("some-remote-task", "some-remote-task:on_cancel")
    second = await _in_transaction(
        store,
        executions_repo.cancel_execution,
        begun[1],
        now=now,
        seen_since=now - timedelta(minutes=2),
    )
    assert second is not None
    assert second.compensation_id is not None
    compensation = await scheduler.status(second.compensation_id)
    assert (compensation.task_name, compensation.compensates) == (
        "some-remote-task:on_cancel",
        begun[1],
    )
    assert compensation.payload == {"n": 1}
    assert compensation.status is zart.ExecutionStatus.SCHEDULED
    assert (await scheduler.status(begun[1])).compensation_id == second.compensation_id


def test_on_cancel_is_checked_when_the_handler_is_declared() -> None:
    def not_async(order: Order) -> None: ...

    async def two(order: Order, extra: int) -> None: ...

    async def handler(order: Order) -> None: ...

    with pytest.raises(zart.ConfigurationError, match=r"on_cancel .* must be an async function"):
        zart.durable("on-cancel-bad-1", on_cancel=not_async)(handler)  # type: ignore[arg-type]
    with pytest.raises(zart.ConfigurationError, match=r"on_cancel .* takes 2 parameters"):
        zart.durable("on-cancel-bad-2", on_cancel=two)(handler)
    with pytest.raises(zart.ConfigurationError, match="names the compensation of another task"):
        zart.durable("on-cancel-bad:on_cancel")(handler)
    with pytest.raises(zart.InvalidName, match="at most 255 fit"):
        zart.durable("x" * 250, on_cancel=handler)(handler)
    assert find_handler("on-cancel-bad-1") is None
    assert find_handler("on-cancel-bad-2:on_cancel") is None
