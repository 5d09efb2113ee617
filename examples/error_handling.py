"""Error handling: the four ways to call a step, and ``on_failure``.

1. ``await step(...)``: fail fast. Any failure fails the execution (or goes to on_failure).
2. ``await zart.step(step(...))``: a three-way outcome to ``match``: Ok, BusinessErr, ZartErr.
3. ``await zart.step_or(step(...), default)``: any failure gives the default.
4. ``await zart.step_or_else(step(...), fn)``: the step's own error goes to ``fn``.

``on_failure(data, failure)`` runs when a failure reaches the top of the handler; what it
returns becomes the execution's result.

    python examples/error_handling.py
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel

import zart

DATABASE = Path("error_handling.db")
BALANCES = {"alice": 500, "bob": 20, "carol": 300}
DECLINED_CARDS = {"carol"}


class InsufficientFunds(Exception):
    def __init__(self, balance: int, needed: int) -> None:
        super().__init__(balance, needed)  # args are stored; replay rebuilds the exception
        self.balance, self.needed = balance, needed


class CardDeclined(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Order(BaseModel):
    account: str
    amount: int


class Receipt(BaseModel):
    status: str
    detail: str


@zart.step("check-balance")
async def check_balance(account: str, needed: int) -> int:
    if BALANCES[account] < needed:
        raise InsufficientFunds(BALANCES[account], needed)
    return BALANCES[account]


@zart.step("fetch-discount")
async def fetch_discount(account: str) -> int:
    raise ConnectionError("promotions service is down")


@zart.step("charge-card")
async def charge_card(account: str, amount: int) -> Receipt:
    if account in DECLINED_CARDS:
        raise CardDeclined("do not honor")
    return Receipt(status="paid", detail=f"charged {amount} to {account}")


@zart.durable("checkout")
async def checkout(order: Order) -> Receipt:
    match await zart.step(check_balance(order.account, order.amount)):  # convention 2
        case zart.Ok(balance):
            print(f"  {order.account}: balance {balance}")
        case zart.BusinessErr(InsufficientFunds(balance=have, needed=need)):
            return Receipt(status="insufficient_funds", detail=f"have {have}, need {need}")
        case zart.BusinessErr(error) | zart.ZartErr(error):
            raise error
    discount = await zart.step_or(fetch_discount(order.account), 0)  # convention 3
    print(f"  {order.account}: fetch-discount failed, step_or gave {discount}")
    return await zart.step_or_else(  # convention 4
        charge_card(order.account, order.amount - discount),
        lambda error: Receipt(status="invoiced", detail=f"card declined: {error.reason}"),
    )


async def payment_failed(order: Order, failure: zart.ExecutionFailure) -> Receipt:
    match failure:
        case zart.StepFailed(step="charge-card", error=CardDeclined(reason=reason)):
            return Receipt(status="payment_failed", detail=f"card declined: {reason}")
    raise failure.error  # anything else: the execution fails


@zart.durable("pay-now", on_failure=payment_failed)
async def pay_now(order: Order) -> Receipt:
    return await charge_card(order.account, order.amount)  # convention 1


async def main() -> None:
    runs = [(checkout, "alice"), (checkout, "bob"), (checkout, "carol"), (pay_now, "carol")]
    runs.append((checkout, "dave"))  # unknown account: KeyError, and no on_failure on checkout
    async with zart.DurableScheduler(f"sqlite+aiosqlite:///{DATABASE}") as scheduler:
        await scheduler.migrate()
        async with scheduler.run_worker(poll_interval=0.05):
            for handler, account in runs:
                execution_id = await scheduler.start(handler, Order(account=account, amount=50))
                try:
                    receipt = await scheduler.wait(execution_id, timeout=30)
                except zart.ExecutionFailed as failed:  # failed.error is what the table holds
                    error = failed.error
                    print(f"{handler.name} {account}: FAILED, {error['kind']} in {error['step']}:")
                    print(f"    {error['error']['type']}: {error['message']}")
                else:
                    print(f"{handler.name} {account}: completed, {receipt!r}")


if __name__ == "__main__":
    for suffix in ("", "-wal", "-shm"):  # start from an empty database on every run
        Path(f"{DATABASE}{suffix}").unlink(missing_ok=True)
    asyncio.run(main())
