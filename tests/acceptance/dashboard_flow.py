"""Handlers for the dashboard's browser tests: executions that complete, fail, wait for an
event, sleep for an hour, a typed one whose input schema the Start form is built from, a
parent of a child, and one whose code "changes" under it (a replay that diverges)."""

from __future__ import annotations

import os

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


@zart.durable("dash-family")
async def dash_family(data: dict[str, str]) -> dict[str, object]:
    return await zart.run_child(dash_order, Order(customer=data["customer"], amount=3))


@zart.step("dash-before")
async def before() -> str:
    return "before"


@zart.step("dash-after")
async def after() -> str:
    return "after"


@zart.durable("dash-drift")
async def dash_drift(data: dict[str, str]) -> str:
    # The "deploy": once the flag file exists, this code takes another first step than the
    # one its first run recorded, so its next replay diverges and the execution is held.
    deployed = os.path.exists(data["flag"])  # noqa: ASYNC240 - a test's flag, not I/O to wait on
    first = await (after() if deployed else before())
    await zart.wait_for_event("go")
    return first
