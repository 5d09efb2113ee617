"""Durable handlers the CLI tests start by name: ``zart worker tests.acceptance.cli_handlers``
runs them, ``zart start --module tests.acceptance.cli_handlers`` validates their payloads."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel

import zart


class Greeting(BaseModel):
    name: str


class Approval(BaseModel):
    approved: bool
    by: str


@zart.step("shout")
async def shout(name: str) -> str:
    return name.upper()


@zart.step("flaky", retry="fixed(1, 10ms)")
async def flaky(name: str) -> str:
    raise ConnectionError(f"{name} is unreachable (attempt {zart.context().current_attempt})")


@zart.durable("greet")
async def greet(data: Greeting) -> dict[str, str]:
    loud = await shout(data.name)
    return {"greeting": f"HELLO {loud}"}


@zart.durable("doomed")
async def doomed(data: Greeting) -> str:
    await shout(data.name)
    return await flaky(data.name)


@zart.durable("approval")
async def approval(data: Greeting) -> str:
    decision = await zart.wait_for_event("decision", timeout=timedelta(days=1), model=Approval)
    return f"{data.name}: {'approved' if decision.approved else 'refused'} by {decision.by}"


@zart.step("refund")
async def refund(name: str) -> str:
    return f"refunded {name}"


async def undo_order(data: Greeting) -> str:
    return await refund(data.name)


@zart.durable("order", on_cancel=undo_order)
async def order(data: Greeting) -> str:
    await zart.wait_for_event("shipped", timeout=timedelta(days=1))
    return f"{data.name}: shipped"
