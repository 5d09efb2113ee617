"""A 5-step durable handler whose steps journal their side effects to a file (fsynced), for
the crash-recovery test. With CRASH_FLOW_HANG=1, step 3 hangs after starting, so the test can
kill the worker in the middle of it."""

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


@zart.step("step-{n}")
async def do_step(n: int, journal_path: str) -> int:
    journal(journal_path, f"start {n}")
    if n == 3 and os.environ.get("CRASH_FLOW_HANG") == "1":
        await asyncio.sleep(3600)  # the test kills the worker here
    journal(journal_path, f"done {n}")
    return n


@zart.durable("crash-flow")
async def crash_flow(data: dict[str, Any]) -> int:
    total = 0
    for n in range(1, 6):
        total += await do_step(n, data["journal"])
    return total
