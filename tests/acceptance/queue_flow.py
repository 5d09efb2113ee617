"""Handlers of the queue acceptance test: each writes its entry and exit, with the system's
monotonic clock (shared by every process on the machine), to the journal file named by
``QUEUE_JOURNAL``, so the test can compute how many ran at once across worker processes."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import zart

capped = zart.Queue("acc-capped", concurrency=3)
tenants = zart.Queue("acc-tenants", partition_concurrency=1)


def _journal(event: str, queue: str, partition: str) -> None:
    line = f"{event} {queue} {partition} {time.monotonic_ns()}\n".encode()
    fd = os.open(os.environ["QUEUE_JOURNAL"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one small O_APPEND write: never interleaved with another's
    finally:
        os.close(fd)


async def _run(queue: str, data: dict[str, Any]) -> str:
    partition = data.get("partition", "-")
    _journal("enter", queue, partition)
    await asyncio.sleep(0.02)
    _journal("exit", queue, partition)
    return "done"


@zart.durable("acc-capped-task", queue=capped)
async def capped_task(data: dict[str, Any]) -> str:
    return await _run("acc-capped", data)


@zart.durable("acc-tenant-task", queue=tenants)
async def tenant_task(data: dict[str, Any]) -> str:
    return await _run("acc-tenants", data)


rated = zart.Queue("acc-rate", rate_limit="20/1s")


@zart.durable("acc-rate-task", queue=rated)
async def rate_task(data: dict[str, Any]) -> str:
    return await _run("acc-rate", data)
