"""Parents and children for the worker-process tests: every body journals its side effect
to a file (fsynced, with the worker's pid). With CHILDREN_FLOW_HANG=1 the parent hangs in a
step after starting its child, so the test can kill the worker there."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import zart


def journal(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as file:
        file.write(f"{line} {os.getpid()}\n")
        file.flush()
        os.fsync(file.fileno())


@zart.step("child-work")
async def child_work(journal_path: str, n: int) -> int:
    journal(journal_path, f"child {n}")
    await asyncio.sleep(0.01)  # long enough for the other workers to claim some too
    return n * n


@zart.durable("acc-child")
async def acc_child(data: dict[str, Any]) -> int:
    return await child_work(data["journal"], data["n"])


@zart.step("parent-hang")
async def parent_hang(journal_path: str) -> None:
    journal(journal_path, "parent hang")
    if os.environ.get("CHILDREN_FLOW_HANG") == "1":
        await asyncio.sleep(3600)  # the test kills the worker here


@zart.durable("acc-parent")
async def acc_parent(data: dict[str, Any]) -> int:
    handle = await zart.start_child(acc_child, {"journal": data["journal"], "n": 7})
    await parent_hang(data["journal"])
    return await handle.result()


@zart.durable("acc-fan-out")
async def acc_fan_out(data: dict[str, Any]) -> int:
    handles = [
        await zart.start_child(acc_child, {"journal": data["journal"], "n": n})
        for n in range(data["children"])
    ]
    return sum(await asyncio.gather(*(handle.result() for handle in handles)))
