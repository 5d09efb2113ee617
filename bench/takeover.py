"""Takeover delay under a backlog (issue 13): how long a dead worker's executions wait, once
their lease expired, while fresh starts queue.

On a throwaway PostgreSQL (``tests/pg_server.py``, or ``--database-url``):

1. ``--victims`` executions are started and claimed by a worker that dies at once (a claim
   with ``--lease`` seconds of lease and nobody behind it): they stay ``running`` until the
   lease expires;
2. ``--backlog`` fresh executions are started after them (each a step that sleeps
   ``--step-ms``), all due before that lease expiry;
3. one in-process worker (``--concurrency``, default poll interval) works through them all.

Reported, from the stored ``completed_at`` of each execution: the takeover delay of each
victim (its completion - the lease expiry) and how many fresh starts completed between the
expiry and it. The code measured is this checkout's, or ``--code PATH``'s (another checkout,
e.g. the main branch before the change): ``python bench/takeover.py --code /work/main``.

A one-off measurement, not part of ``make bench``; no test asserts on its timings.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose zart is measured")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--victims", type=int, default=16)
    parser.add_argument("--backlog", type=int, default=3000)
    parser.add_argument("--lease", type=float, default=4.0)
    parser.add_argument("--step-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=16)
    return parser.parse_args()


async def measure(args: argparse.Namespace, url: str) -> dict[str, Any]:
    import zart
    from zart.repositories import claims
    from zart.repositories.executors import ConnectionExecutor

    @zart.step("work")
    async def work(ms: float) -> None:
        await asyncio.sleep(ms / 1000)

    @zart.durable("takeover-bench")
    async def handler(data: dict[str, Any]) -> None:
        await work(data["ms"])

    async with zart.DurableScheduler(url) as scheduler:
        await scheduler.migrate()
        payload = {"ms": args.step_ms}
        victims = [await scheduler.start(handler, payload) for _ in range(args.victims)]
        async with scheduler.engine.begin() as conn:
            taken = await ConnectionExecutor(conn).run(
                claims.claim_ready_executions,
                worker_id="dead-worker",
                task_names=["takeover-bench"],
                limit=args.victims,
                now=scheduler.clock.now(),
                lease_timeout=timedelta(seconds=args.lease),
            )
        assert sorted(c.execution.execution_id for c in taken) == sorted(victims)
        expiry = taken[0].lease.expires_at
        began = time.monotonic()
        backlog: list[str] = []
        for start in range(0, args.backlog, 50):
            count = min(50, args.backlog - start)
            backlog += await asyncio.gather(
                *(scheduler.start(handler, payload) for _ in range(count))
            )
        started_in = time.monotonic() - began
        last_start = (await scheduler.status(backlog[-1])).created_at
        async with scheduler.run_worker(concurrency=args.concurrency):
            for execution_id in [*victims, *backlog]:
                await scheduler.wait(execution_id, timeout=600)
        done = {i: (await scheduler.status(i)).completed_at for i in [*victims, *backlog]}
    delays = sorted((done[v] - expiry).total_seconds() for v in victims)  # type: ignore[operator]
    ahead = [
        sum(1 for b in backlog if expiry < done[b] < done[v])  # type: ignore[operator]
        for v in victims
    ]
    backlog_left = sum(1 for b in backlog if done[b] > expiry)  # type: ignore[operator]
    return {
        "backlog started in s": round(started_in, 2),
        "all backlog due before the expiry": last_start < expiry,
        "backlog still queued at the expiry": backlog_left,
        "takeover delay s (first, median, last)": [
            round(delays[0], 3),
            round(statistics.median(delays), 3),
            round(delays[-1], 3),
        ],
        "fresh starts completed after the expiry, before a victim (min, max)": [
            min(ahead),
            max(ahead),
        ],
    }


def main() -> None:
    args = _arguments()
    sys.path.insert(0, str(args.code.resolve()))
    if str(ROOT) not in sys.path:
        sys.path.append(str(ROOT))
    from tests.pg_server import start_postgres

    server = None
    url = args.database_url
    if url is None:
        server = start_postgres(durable=True)
        server.create_database("takeover_bench")
        url = server.url("takeover_bench")
    try:
        result = asyncio.run(measure(args, url))
    finally:
        if server is not None:
            server.stop()
    import zart

    print(f"code: {Path(zart.__file__).parent.parent}")
    for key, value in result.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
