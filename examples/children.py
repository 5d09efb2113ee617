"""Child executions: an order charges through a payment workflow and fans out to shipping.

``zart.run_child(charge, ChargeIn(...))`` starts ``charge`` as a child execution and waits
for its result durably: the order suspends (no worker slot held) until the child ends, and
the child's end wakes it. The start is a step of the order, so a replay or a crash never
starts a second charge. ``zart.start_child`` returns a handle; ``asyncio.gather`` over the
handles' ``result()`` fans the parcels out to every worker. A failing child raises its own
exception in the parent, like a failing step.

    python examples/children.py
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel

import zart

DATABASE = Path("children.db")


class ChargeIn(BaseModel):
    customer: str
    cents: int


class Receipt(BaseModel):
    charge_id: str
    cents: int


class CardDeclined(Exception):
    def __init__(self, customer: str, cents: int) -> None:
        super().__init__(customer, cents)


@zart.step("charge-card")
async def charge_card(data: ChargeIn) -> Receipt:
    if data.cents > 10_000:
        raise CardDeclined(data.customer, data.cents)
    return Receipt(charge_id=f"ch_{data.customer}_{data.cents}", cents=data.cents)


@zart.durable("charge")
async def charge(data: ChargeIn) -> Receipt:
    return await charge_card(data)


@zart.durable("ship-parcel")
async def ship_parcel(parcel: str) -> str:
    return f"label-{parcel}"


class Order(BaseModel):
    customer: str
    cents: int
    parcels: list[str]


@zart.durable("order")
async def order(data: Order) -> str:
    try:
        receipt = await zart.run_child(charge, ChargeIn(customer=data.customer, cents=data.cents))
    except CardDeclined as declined:
        return f"declined: {declined.args}"
    handles = [await zart.start_child(ship_parcel, parcel) for parcel in data.parcels]
    labels = await asyncio.gather(*(handle.result() for handle in handles))
    return f"{type(receipt).__name__} {receipt.charge_id}, labels {', '.join(labels)}"


async def main() -> None:
    async with zart.DurableScheduler(f"sqlite+aiosqlite:///{DATABASE}") as scheduler:
        await scheduler.migrate()
        async with scheduler.run_worker(poll_interval=0.05):
            paid = await scheduler.start(
                order, Order(customer="ada", cents=4990, parcels=["a", "b", "c"])
            )
            print(f"order ada: {await scheduler.wait(paid, timeout=30)}")
            big = await scheduler.start(order, Order(customer="bob", cents=99_000, parcels=[]))
            print(f"order bob: {await scheduler.wait(big, timeout=30)}")
        detail = await scheduler.execution_detail(paid)
        print(f"children of {paid[:8]}...: {len(detail.children)}")
        for child in detail.children:
            parent = "its parent" if child.parent_execution_id == paid else "?"
            print(f"  {child.task_name}: {child.status.value}, started by {parent}")


if __name__ == "__main__":
    DATABASE.unlink(missing_ok=True)
    asyncio.run(main())
