"""Handlers for the dashboard's browser tests: executions that complete, fail, wait for an
event, sleep for an hour, and a typed one whose input schema the Start form is built from."""

from __future__ import annotations

import pydantic

import zart


class Order(pydantic.BaseModel):
    customer: str
    amount: int
    express: bool = False


@zart.step("dash-charge")
async def charge(amount: int) -> int:
    if amount < 0:
        raise ValueError(f"card declined for {amount}")
    return amount


@zart.durable("dash-order")
async def dash_order(order: Order) -> dict[str, object]:
    charged = await charge(order.amount)
    return {"customer": order.customer, "charged": charged}


@zart.durable("dash-approval")
async def dash_approval(data: dict[str, str]) -> str:
    decision = await zart.wait_for_event("approval")
    return f"{data.get('who', '?')}: {decision['answer']}"


@zart.durable("dash-nap")
async def dash_nap(data: dict[str, str]) -> str:
    await zart.sleep("nap", "1h")
    return "rested"


emails = zart.Queue("dash-emails", concurrency=2, rate_limit="100/1m")


@zart.durable("dash-email", queue=emails)
async def dash_email(data: dict[str, str]) -> str:
    return f"sent to {data.get('to', '?')}"
