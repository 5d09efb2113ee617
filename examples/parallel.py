"""Parallel steps: fan out with ``asyncio.gather``, then continue sequentially.

Each health check is its own step with its own name (``check-{service}``), run concurrently
and checkpointed on its own; the one that fails first is retried alone while the others go
on. A summary step then runs once all checks are done.

    python examples/parallel.py
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from pydantic import BaseModel

import zart

DATABASE = Path("parallel.db")
LATENCY = {"auth": 0.30, "billing": 0.20, "search": 0.10, "email": 0.25}
STARTED = time.monotonic()


def elapsed() -> str:
    return f"{(time.monotonic() - STARTED) * 1000:5.0f} ms"


class ServiceHealth(BaseModel):
    service: str
    healthy: bool
    attempts: int


class HealthReport(BaseModel):
    checked: int
    all_healthy: bool
    summary: str


@zart.step("check-{service}", retry="fixed(2, 100ms)")
async def check_service(service: str) -> ServiceHealth:
    attempt = zart.context().current_attempt
    print(f"  [{elapsed()}] check-{service}: attempt {attempt} starts")
    await asyncio.sleep(LATENCY[service])  # stands in for an HTTP call
    if service == "search" and attempt == 0:
        print(f"  [{elapsed()}] check-{service}: attempt {attempt} failed")
        raise ConnectionError("search is restarting")
    print(f"  [{elapsed()}] check-{service}: healthy")
    return ServiceHealth(service=service, healthy=True, attempts=attempt + 1)


@zart.step("summarize")
async def summarize(results: list[ServiceHealth]) -> str:
    print(f"  [{elapsed()}] summarize: {len(results)} results")
    return ", ".join(f"{r.service} ok after {r.attempts} attempt(s)" for r in results)


@zart.durable("health-check")
async def health_check(services: list[str]) -> HealthReport:
    results = await asyncio.gather(*(check_service(name) for name in services))
    summary = await summarize(list(results))
    return HealthReport(
        checked=len(results), all_healthy=all(r.healthy for r in results), summary=summary
    )


async def main() -> None:
    async with zart.DurableScheduler(f"sqlite+aiosqlite:///{DATABASE}") as scheduler:
        await scheduler.migrate()
        async with scheduler.run_worker(poll_interval=0.05):
            began = time.monotonic()
            execution_id = await scheduler.start(health_check, list(LATENCY))
            report = await scheduler.wait(execution_id, timeout=30)
            took = time.monotonic() - began
    sequential = sum(LATENCY.values()) + LATENCY["search"] + 0.1
    print(f"checked {report.checked} services, all healthy: {report.all_healthy}")
    print(f"summary: {report.summary}")
    print(f"the execution took {took:.2f} s; the checks one after another: {sequential:.2f} s")


if __name__ == "__main__":
    for suffix in ("", "-wal", "-shm"):  # start from an empty database on every run
        Path(f"{DATABASE}{suffix}").unlink(missing_ok=True)
    asyncio.run(main())
