"""A recv loop for the worker-process tests: every message taken is journaled by a step
(fsynced). With MESSAGES_FLOW_HANG=1 the step for the third message hangs, so the test can
kill the worker there."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import zart


def journal(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as file:
        file.write(line + "\n")
        file.flush()
        os.fsync(file.fileno())


@zart.step("journal-message-{n}")
async def journal_message(n: int, journal_path: str, message: Any) -> None:
    if n == 3 and os.environ.get("MESSAGES_FLOW_HANG") == "1":
        journal(journal_path, "hanging")
        await asyncio.sleep(3600)  # the test kills the worker here
    journal(journal_path, f"got {message['n']}")


@zart.durable("acc-inbox")
async def acc_inbox(data: dict[str, Any]) -> list[Any]:
    got = []
    for n in range(1, data["count"] + 1):
        message = await zart.recv("items")
        await journal_message(n, data["journal"], message)
        got.append(message["n"])
    return got


@zart.durable("acc-parent-of-child")
async def acc_parent_of_child(data: dict[str, Any]) -> list[Any]:
    return await zart.run_child(acc_inbox, {"journal": data["journal"], "count": 1})
