"""Cancellation with compensation: ``@zart.durable(..., on_cancel=fn)``.

An order reserves stock and charges the card, then waits up to a week for the warehouse to
confirm shipping. The customer cancels before that: ``scheduler.cancel`` (or ``zart cancel``,
or ``POST /api/v1/executions/{id}/cancel``) stops the order where it is and, because a worker
had begun it, starts its compensation in the same transaction: an execution of task
``"order:on_cancel"`` that runs ``undo_order`` on the order's input. The compensation is
durable like any execution: its steps are checkpointed, retried, and never run twice, so a
crash halfway through a refund resumes after the refund.

An order cancelled before any worker began it ran no code, so nothing is compensated.

The script runs on virtual time (``zart.testing.durable_test_scheduler``); its SQLite file
``cancellation.db`` is kept for you to look at (``zart show ID --database-url
sqlite+aiosqlite:///cancellation.db``).

    python examples/cancellation.py
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel

import zart
from zart.testing import durable_test_scheduler, run_to_completion, run_until_waiting

DATABASE = Path("cancellation.db")

#: The application's side of things: stock held and money taken, per order.
reserved: dict[str, int] = {}
charged: dict[str, int] = {}


class Order(BaseModel):
    order_id: str
    sku: str
    quantity: int
    amount_cents: int


@zart.step("reserve-stock")
async def reserve_stock(order: Order) -> None:
    reserved[order.order_id] = order.quantity
    print(f"  reserve-stock: {order.quantity} x {order.sku} held for {order.order_id}")


@zart.step("charge-card")
async def charge_card(order: Order) -> str:
    charged[order.order_id] = order.amount_cents
    print(f"  charge-card: {order.amount_cents} cents taken for {order.order_id}")
    return f"ch_{order.order_id}"


@zart.step("release-stock")
async def release_stock(order_id: str) -> int:
    released = reserved.pop(order_id, 0)
    print(f"  release-stock: {released} item(s) of {order_id} back on the shelf")
    return released


@zart.step("refund-card")
async def refund_card(order_id: str) -> int:
    refunded = charged.pop(order_id, 0)
    print(f"  refund-card: {refunded} cents refunded for {order_id}")
    return refunded


async def undo_order(order: Order) -> str:
    """The compensation: undo whatever the order did. Each undo is a step of its own and
    reads the application's state, so it is right however far the order had got."""
    info = zart.context()
    print(f"  compensation {info.task_name!r} undoes {info.compensates!r}")
    items = await release_stock(order.order_id)
    cents = await refund_card(order.order_id)
    return f"released {items} item(s), refunded {cents} cents"


@zart.durable("order", on_cancel=undo_order)
async def place_order(order: Order) -> str:
    await reserve_stock(order)
    charge = await charge_card(order)
    await zart.wait_for_event("shipped", timeout=timedelta(days=7))
    return f"shipped, paid by {charge}"


async def main() -> None:
    async with durable_test_scheduler(f"sqlite+aiosqlite:///{DATABASE}") as scheduler:
        print("Order 7 is placed, and cancelled while it waits for the warehouse")
        order = Order(order_id="order-7", sku="lamp", quantity=2, amount_cents=4_990)
        execution_id = await scheduler.start(place_order, order, execution_id="order-7")
        await run_until_waiting(scheduler, execution_id)
        await scheduler.cancel(execution_id)
        cancelled = await scheduler.status(execution_id)
        assert cancelled.compensation_id is not None
        print(f"  cancelled; its compensation is execution {cancelled.compensation_id!r}")
        outcome = await run_to_completion(scheduler, cancelled.compensation_id)
        print(f"  compensation: {outcome}")

        record = await scheduler.status(cancelled.compensation_id)
        print(f"  {record.task_name}: {record.status.value}, undoes {record.compensates!r}")

    print(f"\nheld stock: {reserved}; money taken: {charged}")


if __name__ == "__main__":
    for suffix in ("", "-wal", "-shm"):  # start from an empty database on every run
        Path(f"{DATABASE}{suffix}").unlink(missing_ok=True)
    asyncio.run(main())
