"""Crash recovery: a worker stops in the middle of an execution; another one finishes it.

Pass 1: worker A runs the handler. Two steps finish; the third waits on an event that never
comes, and worker A is stopped at that moment (``stop(timeout=0)`` cancels the run and hands its
lease back; a killed process's lease would simply expire after ``lease_timeout``).
Pass 2: worker B claims the execution and replays the handler from the top. The two finished
steps return their stored results without running; the interrupted step runs again
(at-least-once for the step in flight), and the rest of the handler runs once.

    python examples/crash_recovery.py
"""

from __future__ import annotations

import asyncio
import sys
from collections import defaultdict
from pathlib import Path

from pydantic import BaseModel

import zart

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _timeline, from any directory
from _timeline import print_execution

DATABASE = Path("crash_recovery.db")
current_pass = 0
ran: defaultdict[str, list[int]] = defaultdict(list)  # step -> passes whose body ran it
label_printing = asyncio.Event()  # set when print-shipping-label starts
printer_online = asyncio.Event()  # the label printer answers only in pass 2


class Order(BaseModel):
    order_id: str
    sku: str
    amount: int


@zart.step("reserve-stock")
async def reserve_stock(sku: str) -> str:
    ran["reserve-stock"].append(current_pass)
    return f"reservation-{sku}"


@zart.step("charge-card")
async def charge_card(order_id: str, amount: int) -> str:
    ran["charge-card"].append(current_pass)
    return f"txn-{order_id}-{amount}"


@zart.step("print-shipping-label")
async def print_shipping_label(order_id: str) -> str:
    ran["print-shipping-label"].append(current_pass)
    label_printing.set()
    await printer_online.wait()
    return f"label-{order_id}"


@zart.step("send-confirmation")
async def send_confirmation(order_id: str, label: str) -> None:
    ran["send-confirmation"].append(current_pass)


@zart.durable("fulfil-order")
async def fulfil_order(order: Order) -> dict[str, str]:
    print(f"  pass {current_pass}: the handler starts from the top")
    reservation = await reserve_stock(order.sku)
    payment = await charge_card(order.order_id, order.amount)
    label = await print_shipping_label(order.order_id)
    await send_confirmation(order.order_id, label)
    return {"reservation": reservation, "payment": payment, "label": label}


async def main() -> None:
    global current_pass
    async with zart.DurableScheduler(f"sqlite+aiosqlite:///{DATABASE}") as scheduler:
        await scheduler.migrate()
        order = Order(order_id="1001", sku="lamp-42", amount=120)
        execution_id = await scheduler.start(fulfil_order, order, execution_id="order-1001")

        current_pass = 1
        print("Pass 1, worker A:")
        async with scheduler.run_worker(poll_interval=0.05) as worker_a:
            await asyncio.wait_for(label_printing.wait(), timeout=30)
            print("  worker A stops while print-shipping-label is in flight")
            await worker_a.stop(timeout=0)
        status = (await scheduler.status(execution_id)).status.value
        print(f"  the execution is now {status!r}, ready for another worker")

        current_pass = 2
        printer_online.set()
        print("Pass 2, worker B:")
        async with scheduler.run_worker(poll_interval=0.05):
            result = await scheduler.wait(execution_id, timeout=30)
        print(f"  result: {result}")

        print("\nWhich pass ran each step's body:")
        for step, passes in ran.items():
            print(f"  {step:<22} pass {', '.join(map(str, passes))}")
        print("(The attempt interrupted in pass 1 left no row: only finished attempts are stored.)")
        print()
        await print_execution(scheduler, execution_id)


if __name__ == "__main__":
    for suffix in ("", "-wal", "-shm"):  # start from an empty database on every run
        Path(f"{DATABASE}{suffix}").unlink(missing_ok=True)
    asyncio.run(main())
