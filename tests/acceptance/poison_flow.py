"""Handlers for the crash-loop test: a poison one whose step kills its own worker process on
every try (SIGKILL: no handler, no cleanup runs), and innocent ones claimed beside it whose
step waits until the poison one has run, so every innocent is in flight when the worker dies.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import zart

#: The poison handler's own limit (per handler); ``unlimited-poison`` takes the worker's.
POISON_MAX_CLAIMS = 3


@zart.step("explode")
async def explode(marker: str) -> None:
    # Blocking on purpose: from the marker to the kill no other coroutine of the worker runs.
    Path(marker).touch()  # noqa: ASYNC240 - the innocents' step may go on, in the next worker
    os.kill(os.getpid(), signal.SIGKILL)  # no await in between: nothing else runs here


@zart.step("wait-for-the-crash")
async def wait_for_the_crash(marker: str) -> str:
    for _ in range(6000):  # a guard against a hang, not a timing
        if Path(marker).exists():  # noqa: ASYNC240 - a stat of a local file
            return "crashed"
        await asyncio.sleep(0.01)
    raise RuntimeError("the poison execution never ran")


@zart.step("finish")
async def finish(n: int) -> int:
    return n


@zart.durable("poison", max_claims=POISON_MAX_CLAIMS)
async def poison(data: dict[str, Any]) -> None:
    await explode(data["marker"])


@zart.durable("unlimited-poison")
async def unlimited_poison(data: dict[str, Any]) -> None:
    await explode(data["marker"])


@zart.durable("innocent")
async def innocent(data: dict[str, Any]) -> int:
    await wait_for_the_crash(data["marker"])
    return await finish(data["n"])
