"""DBOS Transact's side of the benchmark: the same workloads, written the idiomatic DBOS way.

``@DBOS.step()`` and ``@DBOS.workflow()`` on async functions (DBOS supports them; its database
work then runs in its thread pool), ``DBOS(config=...)`` / ``DBOS.launch()``, workflows started
with ``DBOS.start_workflow_async`` and awaited through their handles. DBOS runs its workflows
in the process that starts them, so there is no separate worker to configure.

Resume: DBOS recovers a workflow whose process died by re-running it from the top, each
recorded step read back with its own query. A helper process (``--record-resume N``) launches
DBOS under another executor id, records N steps and dies with ``os._exit``; this process then
recovers that executor's pending workflow (``DBOS._recover_pending_workflows``, what DBOS's
admin endpoint calls) and waits for it.

Run by ``bench.run`` as ``python -m bench.dbos_workloads --target JSON --out FILE``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from dbos import DBOS, DBOSConfig
from dbos._dbos import _get_dbos_instance
from sqlalchemy.engine import Engine

from bench.measure import (
    IN_FLIGHT,
    CpuMeter,
    StatementCounter,
    Target,
    counter_delta,
    parse_arguments,
    per_workflow_slope,
    postgres_counters,
    postmaster_of,
    run_concurrent,
    run_sequential,
    wait_disconnected,
    write_figures,
)

APPLICATION_VERSION = "zart-bench"  # fixed, so the helper's workflows are recoverable here
RECORDER = "bench-recorder"
WAIT_TIMEOUT = 600.0


@DBOS.step()
async def work(i: int) -> int:
    return i


@DBOS.workflow()
async def ten_steps(data: dict[str, Any]) -> int:
    total = 0
    for i in range(10):
        total += await work(i)
    return total


@DBOS.workflow()
async def thirty_steps(data: dict[str, Any]) -> int:
    total = 0
    for i in range(30):
        total += await work(i)
    return total


class _Crash:
    """Makes ``resume_workflow`` stop after its recorded steps (in the helper process)."""

    holding = False
    reached: asyncio.Event | None = None


@DBOS.step()
async def resume_work(i: int) -> int:
    return i


@DBOS.step()
async def resume_final() -> int:
    return 1


@DBOS.workflow()
async def resume_workflow(data: dict[str, Any]) -> int:
    total = 0
    for i in range(data["n"]):
        total += await resume_work(i)
    if _Crash.holding and _Crash.reached is not None:
        _Crash.reached.set()
        await asyncio.Event().wait()  # never set: the helper process dies here
    return total + await resume_final()


def _config(target: Target, executor_id: str | None = None) -> DBOSConfig:
    config: DBOSConfig = {
        "name": "zart-bench",
        "system_database_url": target.url,
        "application_version": APPLICATION_VERSION,
        "log_level": "WARNING",
    }
    if executor_id is not None:
        config["executor_id"] = executor_id
    return config


def _launch(target: Target, executor_id: str | None = None) -> None:
    DBOS(config=_config(target, executor_id))
    DBOS.launch()
    logging.getLogger("dbos").setLevel(logging.WARNING)


def _system_engine() -> Engine:
    """The engine of DBOS's system database (internal: for counting its statements)."""
    engine: Engine = _get_dbos_instance()._sys_db.engine
    return engine


def _runner(workflow: Any, expected: int) -> Any:
    async def run_one() -> str:
        handle = await DBOS.start_workflow_async(workflow, {"n": 1})
        result = await handle.get_result()
        if result != expected:
            raise RuntimeError(f"{workflow.__name__} returned {result!r}, not {expected}")
        return handle.get_workflow_id()

    return run_one


async def _round(target: Target) -> dict[str, Any]:
    """One timed repetition of each timed workload, after a warm-up; seconds for each."""
    plan = target.plan
    ten = _runner(ten_steps, 45)
    thirty = _runner(thirty_steps, 435)
    await run_sequential(ten, 5)  # warm-up, as for Zart
    await run_sequential(thirty, 2)
    await run_concurrent(ten, IN_FLIGHT)
    # No stored start/finish times here: DBOS keeps them at 1 s resolution on SQLite, and its
    # handle awaits the workflow's task in-process, so the wall clock carries no polling delay.
    meter = CpuMeter(await postmaster_of(target.url))
    with meter.measure() as sequential_cpu:
        short, _ = await run_sequential(ten, plan.sequential_workflows)
    long, _ = await run_sequential(thirty, plan.sequential_long_workflows)
    with meter.measure() as concurrent_cpu:
        together = await run_concurrent(ten, plan.concurrent_workflows)
    return {
        "sequential": short,
        "sequential_30": long,
        "concurrent": together,
        "cpu": {"sequential": sequential_cpu, "concurrent": concurrent_cpu},
    }


# -- resume -----------------------------------------------------------------------------------


async def _record(target: Target, steps: int, out: Path) -> None:
    """The helper process: record ``steps`` steps of a workflow, then die without a word."""
    _launch(target, executor_id=f"{RECORDER}-{steps}")
    _Crash.holding, _Crash.reached = True, asyncio.Event()
    handle = await DBOS.start_workflow_async(resume_workflow, {"n": steps})
    await asyncio.wait_for(_Crash.reached.wait(), WAIT_TIMEOUT)
    text = json.dumps({"workflow_id": handle.get_workflow_id()})
    await asyncio.to_thread(out.write_text, text)
    sys.stdout.flush()
    os._exit(0)  # a crash: no shutdown, the workflow stays PENDING


def _start_recorder(target: Target, steps: int) -> str:
    assert target.work_dir is not None
    out = Path(target.work_dir) / f"dbos-recorder-{steps}.json"
    command = [
        sys.executable,
        "-m",
        "bench.dbos_workloads",
        "--target",
        target.to_json(),
        "--out",
        str(out),
        "--record-resume",
        str(steps),
    ]
    subprocess.run(command, check=True, timeout=WAIT_TIMEOUT)
    workflow_id: str = json.loads(out.read_text())["workflow_id"]
    return workflow_id


async def _resume_one(target: Target, counter: StatementCounter, steps: int) -> dict[str, Any]:
    workflow_id = await asyncio.to_thread(_start_recorder, target, steps)
    with counter.counting() as counts:
        started = time.perf_counter()
        handles = await asyncio.to_thread(DBOS._recover_pending_workflows, [f"{RECORDER}-{steps}"])
        results = [await asyncio.to_thread(handle.get_result) for handle in handles]
        ended = time.perf_counter()
        statements = Counter(counts)
    if [h.get_workflow_id() for h in handles] != [workflow_id]:
        raise RuntimeError(f"recovered {[h.get_workflow_id() for h in handles]}")
    if results != [steps * (steps - 1) // 2 + 1]:
        raise RuntimeError(f"the recovered workflow returned {results!r}")
    # One read of a recorded step per step reached (dbos.operation_outputs).
    reads = sum(
        v
        for k, v in statements.items()
        if k.startswith("SELECT") and k.endswith("operation_outputs")
    )
    return {
        "recorded_steps": steps,
        "load_ms": None,  # DBOS reads each recorded step when the workflow reaches it
        "load_statements": reads,
        "resume_ms": (ended - started) * 1e3,
        "resume_statements": sum(statements.values()),
        "resume_statement_kinds": dict(statements),
        "note": "includes DBOS's queue polling: recovery re-enqueues the workflow",
    }


async def _resume(target: Target) -> dict[str, Any]:
    counter = StatementCounter(_system_engine())
    try:
        return {
            str(steps): await _resume_one(target, counter, steps)
            for steps in target.plan.resume_sizes
        }
    finally:
        counter.close()


# -- commits ----------------------------------------------------------------------------------


async def _commit_batch(target: Target, workflows: int) -> tuple[dict[str, int], Counter[str]]:
    admin_dsn, database = target.postgres()
    await wait_disconnected(admin_dsn, database)
    before = await postgres_counters(admin_dsn, database)
    _launch(target)
    counter = StatementCounter(_system_engine())
    try:
        with counter.counting() as counts:
            await run_sequential(_runner(ten_steps, 45), workflows)
            statements = Counter(counts)
    finally:
        counter.close()
        DBOS.destroy()  # closes its connections: their backends exit and flush their counts
    await wait_disconnected(admin_dsn, database)
    after = await postgres_counters(admin_dsn, database)
    return counter_delta(before, after), statements


async def _commits(target: Target) -> dict[str, Any]:
    small, large = target.plan.commit_batches
    small_delta, _ = await _commit_batch(target, small)
    large_delta, statements = await _commit_batch(target, large)
    slope = per_workflow_slope((small, small_delta), (large, large_delta))
    return {
        "batches": [small, large],
        "steps_per_workflow": 10,
        # DBOS has no worker poll to switch off: the same figures fill both rows.
        "polling": {
            "per_workflow": slope,
            "statements_per_workflow": {k: v / large for k, v in sorted(statements.items())},
        },
        "quiet": {"per_workflow": slope},
    }


async def measure(target: Target, phase: str) -> dict[str, Any]:
    _launch(target)
    try:
        if phase == "round":
            return await _round(target)
        figures: dict[str, Any] = {"resume": await _resume(target)}
    finally:
        DBOS.destroy()
    if target.backend == "postgresql":
        figures["commits"] = await _commits(target)
    return figures


def main() -> None:
    arguments = parse_arguments()
    if arguments.record_resume is not None:
        asyncio.run(_record(arguments.target, arguments.record_resume, arguments.out))
        return
    write_figures(asyncio.run(measure(arguments.target, arguments.phase)), arguments.out)


if __name__ == "__main__":
    main()
