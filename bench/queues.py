"""Claim throughput through queues, on a throwaway PostgreSQL: executions of a handler that
runs no step, one worker (concurrency 64), started in one backlog and run to the end.

- ``unlimited``: the default queue, claimed by the ordinary one-statement claim;
- ``capped``: a queue with ``concurrency=8``, claimed under its row's lock; the handler
  counts how many ran at once, so the figure comes with the cap it held.

    .venv/bin/python bench/queues.py [--executions 2000] [--rounds 2]

It alternates the two, ``--rounds`` times, and prints executions per second for each round.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zart
from tests.pg_server import start_postgres

capped = zart.Queue("bench-capped", concurrency=8)
state = {"now": 0, "most": 0}


async def _count() -> None:
    state["now"] += 1
    state["most"] = max(state["most"], state["now"])
    await asyncio.sleep(0)
    state["now"] -= 1


@zart.durable("bench-unlimited")
async def unlimited(data: int) -> None:
    await _count()


@zart.durable("bench-capped", queue=capped)
async def capped_task(data: int) -> None:
    await _count()


async def _round(url: str, handler: zart.DurableHandler[[int], None], n: int) -> float:
    async with zart.DurableScheduler(url) as scheduler:
        ids = [await scheduler.start(handler, i) for i in range(n)]  # the backlog first
        state["most"] = 0
        began = time.perf_counter()
        async with scheduler.run_worker(concurrency=64, poll_interval=0.05):
            for execution_id in ids:
                await scheduler.wait(execution_id, timeout=600)
        return n / (time.perf_counter() - began)


async def main(url: str, executions: int, rounds: int) -> None:
    async with zart.DurableScheduler(url) as scheduler:
        await scheduler.migrate()
        await scheduler.declare_queues()
    for number in range(1, rounds + 1):
        free = await _round(url, unlimited, executions)
        limited = await _round(url, capped_task, executions)
        print(
            f"round {number}: unlimited {free:,.0f} executions/s;"
            f" capped (concurrency=8) {limited:,.0f} executions/s,"
            f" at most {state['most']} at once",
            flush=True,
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    arguments = parser.parse_args()
    server = start_postgres(durable=True)  # outside the event loop: it runs one of its own
    try:
        server.create_database("zart_queues_bench")
        asyncio.run(main(server.url("zart_queues_bench"), arguments.executions, arguments.rounds))
    finally:
        server.stop()
