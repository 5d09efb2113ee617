"""Where a woken sleeper's CPU goes: the ``sleepers`` workload of :mod:`bench.wake`, with the
wake-up window (from due time until all N completed) under a profiler.

    .venv-bench/bin/python -m bench.wake_profile [--sleepers 3000] [--concurrency 1000]
                                                 [--profiler cprofile|pyinstrument|none]

N executions of ``sleep_until(due)`` then one step, all due at once, on one in-process worker
(``inline_wait_limit=0``), on a throwaway durable PostgreSQL. Prints the process CPU time per
resumed execution in the window (without the profiler's overhead only with ``--profiler
none``), the lags as :mod:`bench.wake` computes them, and the profile.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

import zart  # noqa: E402
import zart.worker  # noqa: E402
from bench.measure import cpu_of, cpu_of_children, parent_of  # noqa: E402
from bench.wake import (  # noqa: E402
    WAKE_POLL,
    _count_claims,
    _lags,
    _start_many,
    _until_count,
    sleeper,
)
from tests.pg_server import connect_existing, start_postgres  # noqa: E402
from zart.repositories import held  # noqa: E402


async def _postmaster(scheduler: zart.DurableScheduler) -> int:
    """The server's main process: the parent of one of its backends."""
    async with scheduler.engine.connect() as conn:
        backend = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    return parent_of(backend)


def _trace(worker: Any) -> list[tuple[str, float, float, int]]:
    """(what, start, end, items) of every claim and group statement from now on."""
    events: list[tuple[str, float, float, int]] = []

    def wrap(owner: Any, attribute: str, what: str, size: Any) -> None:
        original = getattr(owner, attribute)

        async def traced(*args: Any, **kwargs: Any) -> Any:
            began = time.time()
            result = await original(*args, **kwargs)
            events.append((what, began, time.time(), size(args, result)))
            return result

        setattr(owner, attribute, traced)

    runtime = worker.runtime
    wrap(worker, "_claim", "claim", lambda args, result: result)
    wrap(worker._ahead, "claim", "claim ahead", lambda args, result: worker.held)
    wrap(runtime._checkpoints, "_commit", "checkpoints", lambda args, _: len(args[0]))
    wrap(runtime._finishes, "_commit", "finishes", lambda args, _: len(args[0]))
    store, run = worker.store, worker.store.run

    async def checked(operation: Any, /, *args: Any, **kwargs: Any) -> Any:
        began = time.time()
        result = await run(operation, *args, **kwargs)
        if operation is held.still_held:
            events.append(("held leases checked", began, time.time(), len(args[0])))
        return result

    store.run = checked
    return events


def _extra_workers(url: str, count: int, concurrency: int) -> list[subprocess.Popen[bytes]]:
    """``count`` more worker processes (``zart worker bench.wake``), beside this one's."""
    command = [sys.executable, "-m", "zart", "worker", "bench.wake"]
    options = ["--concurrency", str(concurrency), "--database-url", url]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return [
        subprocess.Popen([*command, *options], env=env, stdout=subprocess.DEVNULL)
        for _ in range(count)
    ]


def _start_profiler(profiler: str) -> Any:
    if profiler == "cprofile":
        found = cProfile.Profile()
        found.enable()
        return found
    if profiler == "pyinstrument":
        from pyinstrument import Profiler

        sampler = Profiler(interval=0.001, async_mode="disabled")
        sampler.start()
        return sampler
    return None


async def profile(
    url: str,
    count: int,
    concurrency: int,
    profiler: str,
    trace: bool,
    extra_workers: int = 0,
    dump: str | None = None,
) -> str:
    scheduler = zart.DurableScheduler(url, inline_wait_limit=0)
    starter = zart.DurableScheduler(url)
    out: list[str] = []
    others = _extra_workers(url, extra_workers, concurrency)
    try:
        await scheduler.migrate()
        async with scheduler.run_worker(concurrency=concurrency) as worker:
            zart.worker.freeze_startup_objects()  # as `zart worker` and bench.wake do
            zart.worker.collect_less_often()
            due = time.time() + 10.0 + count * 0.004
            began = time.perf_counter()
            await _start_many(starter, sleeper, count, due)
            await _until_count(starter, sleeper.name, "waiting", count, 0.25)
            out.append(f"started and suspended {count} in {time.perf_counter() - began:.1f} s")
            if time.time() > due - 1.0:
                raise RuntimeError("due came before all were asleep; start fewer")
            timeline = _trace(worker) if trace else None  # from here: claims ahead too
            await asyncio.sleep(due - 0.5 - time.time())
            batches = _count_claims(worker)
            prof = _start_profiler(profiler)
            server = await _postmaster(starter)
            server_cpu = cpu_of_children(server)
            others_cpu = sum(cpu_of(other.pid) for other in others)
            cpu = time.process_time()
            await _until_count(starter, sleeper.name, "completed", count, WAKE_POLL)
            cpu = time.process_time() - cpu
            server_cpu = cpu_of_children(server) - server_cpu
            others_cpu = sum(cpu_of(other.pid) for other in others) - others_cpu
            if profiler == "pyinstrument":
                prof.stop()
            elif profiler == "cprofile":
                prof.disable()
        lags, _ = await _lags(scheduler, due)
    finally:
        for other in others:
            other.terminate()
        for other in others:
            other.wait(30)
        await starter.close()
        await scheduler.close()
    if others:
        out.append(
            f"{len(others)} more worker processes: {others_cpu / count * 1e6:,.0f} µs of"
            " their CPU per resumed execution (not in the window CPU below)"
        )
    claims = [n for n in batches if n > 0]
    out.append(
        f"window CPU {cpu:.2f} s = {cpu / count * 1e6:,.0f} µs per resumed execution"
        f" (profiler: {profiler}; the window includes 0.5 s idle before due);"
        f" PostgreSQL server {server_cpu / count * 1e6:,.0f} µs"
    )
    out.append(
        f"within 1 s: {sum(1 for lag in lags if lag <= 1000)} of {count};"
        f" last resumed {max(lags) / 1e3:.2f} s after due;"
        f" {count / (max(lags) / 1e3):,.0f} resumed/s;"
        f" claims {len(claims)}, mean batch {sum(claims) / max(len(claims), 1):.0f},"
        f" empty {len(batches) - len(claims)}"
    )
    if timeline:
        for what, start, end, items in sorted(timeline, key=lambda e: e[1]):
            out.append(
                f"  {what:12} {(start - due) * 1e3:8.1f} .. {(end - due) * 1e3:8.1f} ms"
                f"  ({(end - start) * 1e3:6.1f} ms)  {items}"
            )
    if profiler == "cprofile":
        if dump:
            prof.dump_stats(dump)
        text = io.StringIO()
        stats = pstats.Stats(prof, stream=text)
        stats.sort_stats("tottime").print_stats(40)
        stats.sort_stats("cumulative").print_stats(60)
        out.append(text.getvalue())
    elif profiler == "pyinstrument":
        out.append(prof.output_text(unicode=True, color=False))
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sleepers", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument(
        "--profiler", choices=("cprofile", "pyinstrument", "none"), default="cprofile"
    )
    parser.add_argument(
        "--extra-workers", type=int, default=0, help="more worker processes (zart worker)"
    )
    parser.add_argument("--trace", action="store_true", help="a timeline of the statements")
    parser.add_argument("--url", help="an existing database instead of a throwaway server")
    parser.add_argument("--dump", help="cprofile: also write the raw stats to this file")
    arguments = parser.parse_args()
    server = None
    url = arguments.url
    if url is not None:  # a fresh database on that server, so earlier runs' rows do not count
        server = connect_existing(url)
        name = f"zart_wake_profile_{os.getpid()}"
        server.create_database(name)
        url = server.url(name)
        server = None
    else:
        server = start_postgres(durable=True)
        server.create_database("zart_wake_profile")
        url = server.url("zart_wake_profile")
    try:
        # On the event loop `zart worker` runs on, as bench.wake does.
        with asyncio.Runner(loop_factory=zart.worker.event_loop_factory()) as runner:
            report = runner.run(
                profile(
                    url,
                    arguments.sleepers,
                    arguments.concurrency,
                    arguments.profiler,
                    arguments.trace,
                    arguments.extra_workers,
                    arguments.dump,
                )
            )
        print(report)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
