"""The scale phase of ``make bench`` (issue 16, DESIGN section 7): the operations that must
not slow down as history grows, on an empty table and then with one million finished
executions in it (``ZART_BENCH_SCALE`` rows; loaded with ``INSERT ... SELECT
generate_series``, never a Python loop), PostgreSQL only:

- **claim latency**: one worker claim (``claims.claim_and_load``, limit 1, on the worker's
  own connections) of a ready execution, as the claim loop makes it;
- **start latency**: ``DurableScheduler.start`` of a new execution (no worker: the insert);
- **tag-filtered list**: ``list_executions(tags={"tenant": ...}, limit=20)`` (the tag is
  on 0.1% of the rows);
- **scrape**: the ``/metrics`` body of ``zart serve`` (``zart.scheduler.observability.scrape``:
  the counters and the database gauges), without the HTTP hop;
- **prune throughput**: ``DurableScheduler.prune`` of ``PRUNED`` old finished executions
  (each with its run), rows deleted per second, the million recent ones kept.

Each figure is the median (and p95) of repeated calls, reported beside the empty-table
figure and their ratio. The empty and the full table are two schemas of the same server,
measured in turns, call by call, after the load's pages are checkpointed: a same-run ratio.
Run alone: ``.venv-bench/bin/python -m bench.scale --database-url postgresql+asyncpg://...``
(a throwaway database: it is filled and emptied).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import zart  # noqa: E402
from zart.repositories import claims  # noqa: E402
from zart.scheduler.observability import scrape  # noqa: E402

#: Finished executions loaded for the "full" figures (ZART_BENCH_SCALE overrides; 0 skips).
DEFAULT_ROWS = 1_000_000
#: Old finished executions the prune figure deletes (on each table).
PRUNED = 20_000
REPEAT = 200  # calls per latency figure
TENANTS = 1000  # the loaded rows' tags: tenant t0 ... t999

TASK = "scale-bench"


@zart.durable(TASK)
async def scale_handler(data: dict[str, Any]) -> None:
    return None


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": statistics.median(ordered) * 1e3,
        "p95_ms": ordered[int(len(ordered) * 0.95) - 1] * 1e3,
    }


_LOAD = """
INSERT INTO zart_executions (execution_id, task_name, payload, status, result, current_run_id,
    run_count, claimable_at, claim_count, crashed_claims, version, created_at, updated_at,
    completed_at, tags)
SELECT 'done-' || CAST(:kind AS text) || '-' || i, CAST(:task AS text), '{"n": 1}'::jsonb,
    'completed', 'null'::jsonb, md5(CAST(:kind AS text) || i::text)::uuid::text, 1, NULL, 1, 0,
    3, CAST(:finished AS timestamptz), CAST(:finished AS timestamptz),
    CAST(:finished AS timestamptz),
    jsonb_build_object('tenant', 't' || (i % CAST(:tenants AS integer)))
FROM generate_series(1, CAST(:rows AS integer)) AS i
"""
_LOAD_RUNS = """
INSERT INTO zart_runs (run_id, execution_id, run_index, payload, status, result, trigger,
    started_at, completed_at)
SELECT current_run_id, execution_id, 1, payload, 'completed', result, 'initial', created_at,
    completed_at
FROM zart_executions WHERE execution_id LIKE 'done-' || CAST(:kind AS text) || '-%'
"""


async def _load(scheduler: zart.DurableScheduler, kind: str, rows: int, finished: datetime) -> None:
    """``rows`` finished executions (and their runs), finished at ``finished``, in two
    statements."""
    from sqlalchemy import text

    params = {"kind": kind, "task": TASK, "rows": rows, "finished": finished, "tenants": TENANTS}
    async with scheduler.engine.begin() as conn:
        await conn.execute(text(f"SET LOCAL search_path TO {scheduler.schema}"))
        await conn.execute(text(_LOAD), params)
        await conn.execute(text(_LOAD_RUNS), {"kind": kind})


async def _settle(scheduler: zart.DurableScheduler) -> None:
    """Statistics fresh and the load's dirty pages written: the figures after a load measure
    the table, not the checkpointer catching up with it."""
    from sqlalchemy import text

    async with scheduler.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f"VACUUM ANALYZE {scheduler.schema}.zart_executions"))
        await conn.execute(text(f"VACUUM ANALYZE {scheduler.schema}.zart_runs"))
        await conn.execute(text("CHECKPOINT"))


def _latencies(scheduler: zart.DurableScheduler) -> dict[str, Callable[[], Awaitable[Any]]]:
    """The latency figures' calls on ``scheduler``'s table."""
    runtime = scheduler.runtime
    now = datetime.now(UTC) + timedelta(days=1)  # every started execution is ready by then
    counter = iter(range(10**9))

    async def claim() -> None:
        taken, _ = await runtime.store.run(
            claims.claim_and_load,
            worker_id="scale-bench",
            task_names=[TASK],
            limit=1,
            now=now,
            lease_timeout=timedelta(days=30),
        )
        assert len(taken) == 1

    async def start() -> None:
        await scheduler.start(scale_handler, {"n": next(counter)})

    async def tagged() -> None:
        await scheduler.list_executions(tags={"tenant": "t7"}, limit=20)

    async def scraped() -> None:
        await scrape(scheduler)

    return {"claim": claim, "start": start, "tag_list": tagged, "scrape": scraped}


async def _interleaved(sides: dict[str, zart.DurableScheduler]) -> dict[str, dict[str, Any]]:
    """Every latency figure of every side, the sides taking turns call by call: a slow patch
    of the disk (this VM's fsync latency wanders by 3x within minutes) hits both alike."""
    calls = {name: _latencies(scheduler) for name, scheduler in sides.items()}
    for scheduler in sides.values():
        scheduler.runtime.open_connections()
        # Ready executions for every claim to come (each claim takes one).
        for i in range(REPEAT + 5):
            await scheduler.start(scale_handler, {"i": i})
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in sides}
    try:
        for figure in ("claim", "start", "tag_list", "scrape"):
            repeat = REPEAT if figure in ("claim", "start") else 50
            for name in sides:
                for _ in range(5):  # warm the statement caches and the pool
                    await calls[name][figure]()
            for _ in range(repeat):
                for name in sides:
                    started = time.perf_counter()
                    await calls[name][figure]()
                    samples[name].setdefault(figure, []).append(time.perf_counter() - started)
    finally:
        for scheduler in sides.values():
            await scheduler.runtime.close_connections()
    return {name: {f: _stats(s) for f, s in found.items()} for name, found in samples.items()}


async def _prune_rate(scheduler: zart.DurableScheduler) -> dict[str, float]:
    """Prune ``PRUNED`` old finished executions among whatever else is stored."""
    await _load(scheduler, "old", PRUNED, datetime.now(UTC) - timedelta(days=90))
    await _settle(scheduler)
    started = time.perf_counter()
    pruned = await scheduler.prune("30d")
    seconds = time.perf_counter() - started
    assert pruned.deleted == PRUNED, pruned
    return {"rows": pruned.deleted, "rows_per_second": pruned.deleted / seconds}


async def _clear(scheduler: zart.DurableScheduler) -> None:
    from sqlalchemy import text

    async with scheduler.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {scheduler.schema}.zart_executions CASCADE"))


async def measure(url: str, rows: int) -> dict[str, Any]:
    """The figures on an empty table and on one holding ``rows`` finished executions: two
    schemas of one server, measured in turns (the ratio is a same-run one)."""
    async with (
        zart.DurableScheduler(url, schema="zart_scale_empty") as empty_side,
        zart.DurableScheduler(url, schema="zart_scale_full") as full_side,
    ):
        sides = {"empty": empty_side, "full": full_side}
        for scheduler in sides.values():
            await scheduler.migrate()
            await _clear(scheduler)
        started = time.perf_counter()
        await _load(full_side, "recent", rows, datetime.now(UTC) - timedelta(days=1))
        for scheduler in sides.values():
            await _settle(scheduler)
        load_seconds = time.perf_counter() - started
        figures = await _interleaved(sides)
        for name, scheduler in sides.items():
            figures[name]["prune"] = await _prune_rate(scheduler)
        for scheduler in sides.values():
            await _clear(scheduler)
    empty, full = figures["empty"], figures["full"]
    ratios = {
        name: full[name]["median_ms"] / empty[name]["median_ms"]
        for name in ("claim", "start", "tag_list", "scrape")
    }
    ratios["prune"] = full["prune"]["rows_per_second"] / empty["prune"]["rows_per_second"]
    return {
        "scale": {
            "rows": rows,
            "load_seconds": load_seconds,
            "empty": empty,
            "full": full,
            "ratio": ratios,
        }
    }


def render(figures: dict[str, Any]) -> str:
    scale = figures["scale"]
    empty, full, ratio = scale["empty"], scale["full"], scale["ratio"]
    lines = [
        f"scale: {scale['rows']:,} finished executions (loaded in {scale['load_seconds']:.0f} s)",
        f"{'':22}{'empty table':>22}{'with the rows':>22}{'ratio':>8}",
    ]
    for name, label in (
        ("claim", "claim latency"),
        ("start", "start latency"),
        ("tag_list", "tag-filtered list"),
        ("scrape", "/metrics scrape"),
    ):
        e, f = empty[name], full[name]
        lines.append(
            f"{label:22}{e['median_ms']:>9.2f} ms (p95 {e['p95_ms']:5.2f})"
            f"{f['median_ms']:>9.2f} ms (p95 {f['p95_ms']:5.2f}){ratio[name]:>7.2f}x"
        )
    lines.append(
        f"{'prune':22}{empty['prune']['rows_per_second']:>14,.0f} rows/s"
        f"{full['prune']['rows_per_second']:>14,.0f} rows/s{ratio['prune']:>7.2f}x"
    )
    return "\n".join(lines)


def rows_to_load() -> int:
    return int(os.environ.get("ZART_BENCH_SCALE", DEFAULT_ROWS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", help="a bench Target as JSON (what bench/run.py passes)")
    parser.add_argument("--out", type=Path, help="where to write the figures")
    parser.add_argument("--phase", default="scale")
    parser.add_argument("--database-url", help="run alone, on this throwaway database")
    arguments = parser.parse_args()
    if arguments.database_url:
        url = arguments.database_url
    else:
        from bench.measure import Target

        url = Target.from_json(arguments.target).url
    figures = asyncio.run(measure(url, rows_to_load()))
    print(render(figures), flush=True)
    if arguments.out:
        arguments.out.write_text(json.dumps(figures, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
