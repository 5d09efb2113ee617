"""Checked by mypy --strict in tests/unit/test_typed_handles.py, never run: starting a handler
is typed against its input, and waiting for it returns its result type."""

from __future__ import annotations

from typing import Any, assert_type

from pydantic import BaseModel

import zart
from zart.testing import run_to_completion


class OrderInput(BaseModel):
    order_id: int


class Receipt(BaseModel):
    total: int


@zart.durable("typed-checkout")
async def checkout(order: OrderInput) -> Receipt:
    return Receipt(total=order.order_id)


@zart.durable("typed-nightly")
async def nightly() -> int:
    return 1


async def typed(scheduler: zart.DurableScheduler) -> None:
    execution_id = await scheduler.start(checkout, OrderInput(order_id=1))
    assert_type(execution_id, zart.ExecutionId[Receipt])
    receipt = await scheduler.wait(execution_id)
    assert_type(receipt, Receipt)
    total: int = receipt.total
    assert_type(await run_to_completion(scheduler, execution_id), Receipt)
    assert_type(await scheduler.wait(await scheduler.start(nightly)), int)
    by_name = await scheduler.start("typed-checkout", {"order_id": 2})
    assert_type(await scheduler.wait(by_name), Any)
    plain: str = execution_id  # an execution id is a str
    assert_type(await scheduler.wait(plain), Any)
    del total


def typed_sync(scheduler: zart.DurableScheduler) -> None:
    with scheduler.sync() as sync:
        execution_id = sync.start(checkout, OrderInput(order_id=1))
        assert_type(sync.wait(execution_id), Receipt)


@zart.durable("typed-parent")
async def typed_parent(order: OrderInput) -> int:
    receipt = await zart.run_child(checkout, order)
    assert_type(receipt, Receipt)
    handle = await zart.start_child(checkout, order, parent_close="abandon")
    assert_type(handle, zart.ChildHandle[Receipt])
    assert_type(await handle.result(), Receipt)
    assert_type(await zart.run_child("typed-checkout", {"order_id": 2}), Any)
    assert_type(await zart.recv("topic", timeout="1h", model=OrderInput), OrderInput)
    assert_type(await zart.recv("topic"), Any)
    await zart.send("other", "topic", {"n": 1})
    return receipt.total
