"""Where Zart's time goes: the sequential 10-step workload under a profiler.

    .venv-bench/bin/python -m bench.profiling [--backend postgresql|sqlite] [--workflows 100]
                                              [--cprofile]

Prints the wall-clock and CPU time per step without the profiler, then a profile of the same
workload: pyinstrument's call tree (every thread's samples, not only the awaiting task's), or
with ``--cprofile`` the functions with the most own time and the ``zart/`` functions by
cumulative time. PostgreSQL is a throwaway durable server, as in ``make bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import zart  # noqa: E402
from bench.zart_workloads import POLL_INTERVAL, ten_steps  # noqa: E402
from tests.pg_server import start_postgres  # noqa: E402


async def _batch(scheduler: zart.DurableScheduler, workflows: int) -> None:
    for _ in range(workflows):
        execution_id = await scheduler.start(ten_steps, {"n": 1})
        await scheduler.wait(execution_id, timeout=120)


async def profile(url: str, workflows: int, use_cprofile: bool, dump: str | None = None) -> str:
    async with zart.DurableScheduler(url) as scheduler:
        await scheduler.migrate()
        async with scheduler.run_worker(concurrency=64, poll_interval=POLL_INTERVAL):
            await _batch(scheduler, 10)  # warm-up
            cpu, wall = time.process_time(), time.perf_counter()
            await _batch(scheduler, workflows)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            steps = workflows * 10
            header = (
                f"{workflows} sequential 10-step workflows, unprofiled: "
                f"{wall / steps * 1e6:,.0f} µs wall and {cpu / steps * 1e6:,.0f} µs CPU per step"
                " (start, claim, finish and wait included)\n"
            )
            if use_cprofile:
                profiler = cProfile.Profile()
                profiler.enable()
                await _batch(scheduler, workflows)
                profiler.disable()
                if dump:
                    profiler.dump_stats(dump)
                return header + _cprofile_text(profiler)
            from pyinstrument import Profiler

            sampler = Profiler(interval=0.001, async_mode="disabled")
            sampler.start()
            await _batch(scheduler, workflows)
            sampler.stop()
            return header + sampler.output_text(unicode=True, color=False)


def _cprofile_text(profiler: cProfile.Profile) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats("zart/", 30)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--workflows", type=int, default=100)
    parser.add_argument("--cprofile", action="store_true", help="cProfile, not pyinstrument")
    parser.add_argument("--dump", help="with --cprofile: also write the raw stats to this file")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zart-profile-") as work_dir:
        if arguments.backend == "postgresql":
            server = start_postgres(durable=True)
            server.create_database("zart_profile")
            url = server.url("zart_profile")
        else:
            server = None
            url = f"sqlite+aiosqlite:///{Path(work_dir) / 'zart.db'}"
        try:
            print(
                asyncio.run(profile(url, arguments.workflows, arguments.cprofile, arguments.dump))
            )
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
