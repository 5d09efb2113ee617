"""Messages: a support ticket receives several messages over its life, in order.

``zart.recv("reply", timeout=...)`` takes the next message of the topic, first in first out;
messages sent before the ``recv`` are kept for it, and a ``recv`` whose timeout passes raises
``zart.RecvTimeout`` (stored: a replay raises it again). From outside, ``scheduler.send``
stores a message (in the caller's transaction with ``session=``); from a handler,
``zart.send`` is a step, delivered exactly once. Over HTTP: ``POST
/api/v1/executions/{id}/messages/{topic}``; from a shell: ``zart message send ID TOPIC JSON``.

    python examples/messages.py
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import zart

DATABASE = Path("messages.db")


class Reply(BaseModel):
    author: str
    text: str


@zart.durable("ticket")
async def ticket(data: dict[str, Any]) -> list[str]:
    thread = []
    while True:
        try:
            reply = await zart.recv("reply", timeout=data["idle_seconds"], model=Reply)
        except zart.RecvTimeout:
            thread.append("(closed: nobody wrote for a while)")
            break
        thread.append(f"{reply.author}: {reply.text}")
        if reply.text == "thanks, solved":
            break
    await zart.send(data["notify"], "closed", {"ticket": zart.context().execution_id})
    return thread


@zart.durable("support-desk")
async def support_desk(data: dict[str, Any]) -> str:
    closed = await zart.recv("closed")
    return f"desk saw ticket {closed['ticket']} close"


async def main() -> None:
    async with zart.DurableScheduler(f"sqlite+aiosqlite:///{DATABASE}") as scheduler:
        await scheduler.migrate()
        async with scheduler.run_worker(poll_interval=0.05):
            desk = await scheduler.start(support_desk, {}, execution_id="desk")
            opened = await scheduler.start(
                ticket, {"idle_seconds": 30, "notify": desk}, execution_id="ticket-1"
            )
            # sent before the ticket reaches its recv: kept, and taken in order
            await scheduler.send(opened, "reply", Reply(author="ada", text="my printer is on fire"))
            await scheduler.send(opened, "reply", Reply(author="bob", text="unplug it"))
            await asyncio.sleep(0.3)
            await scheduler.send(opened, "reply", Reply(author="ada", text="thanks, solved"))
            for line in await scheduler.wait(opened, timeout=30):
                print(f"  {line}")
            print(await scheduler.wait(desk, timeout=30))
            night_desk = await scheduler.start(support_desk, {}, execution_id="night-desk")
            idle = await scheduler.start(ticket, {"idle_seconds": 0.2, "notify": night_desk})
            print(f"an idle ticket: {(await scheduler.wait(idle, timeout=30))[0]}")
            try:
                await scheduler.send(opened, "reply", {"author": "ada", "text": "one more"})
            except zart.EventNotAccepted as exc:
                print(f"a message after the end: {exc}")
            try:
                await scheduler.send("no-such-ticket", "reply", {"author": "x", "text": "y"})
            except zart.ExecutionNotFound as exc:
                print(f"a message to nobody: {exc}")


if __name__ == "__main__":
    DATABASE.unlink(missing_ok=True)
    asyncio.run(main())
