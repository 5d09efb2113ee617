"""A 10-step durable handler for the database-restart test. Every try of a step appends one
line to a journal file (``time execution_id step attempt``) and returns its attempt id, so
the test can tell, from the handler's result (the stored outcomes), which try was recorded,
and so whether a step whose outcome was stored ever ran again."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

import zart

STEPS = 10


def journal(path: str, line: str) -> None:
    # One write() to a file opened with O_APPEND: the four workers' lines never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@zart.step("step-{n}")
async def restart_step(n: int, journal_path: str, pause: float) -> str:
    attempt = uuid.uuid4().hex
    journal(journal_path, f"{time.time():.6f} {zart.context().execution_id} {n} {attempt}")
    await asyncio.sleep(pause)
    return attempt


@zart.durable("restart-flow")
async def restart_flow(data: dict[str, Any]) -> list[str]:
    return [await restart_step(n, data["journal"], data["pause"]) for n in range(1, STEPS + 1)]
