"""Zart's side of the benchmark, through the public API (``zart.DurableScheduler``).

Workloads, on the database named by the target:

- **sequential**: 10-step workflows started and awaited one after another (and 30-step ones,
  whose difference gives the marginal cost of one step);
- **concurrent**: 10-step workflows, 64 in flight, on a worker with ``concurrency=64``;
- **resume**: an execution whose run has N recorded steps (N = 10, 100, 1000) is handed back by
  a stopping worker, then claimed again: the time and statements to load its outcomes, and to
  claim, replay them, run one more step and finish;
- **commits** (PostgreSQL): ``pg_stat_database.xact_commit``, transaction ids and WAL syncs per
  workflow, as the slope between a small and a large batch of sequential workflows.

Run by ``bench.run`` as ``python -m bench.zart_workloads --target JSON --out FILE``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import zart
from bench.measure import (
    IN_FLIGHT,
    CpuMeter,
    StatementCounter,
    Target,
    counter_delta,
    median,
    parse_arguments,
    per_workflow_slope,
    postgres_counters,
    postmaster_of,
    run_concurrent,
    run_sequential,
    wait_disconnected,
    write_figures,
)
from zart.repositories.executors import ConnectionExecutor
from zart.repositories.steps import load_run_outcomes
from zart.worker import Worker, WorkerSettings

POLL_INTERVAL = 0.05  # the worker settings the brief gives; commits are also measured quiet
QUIET_POLL_INTERVAL = 600.0
WAIT_TIMEOUT = 300.0


@zart.step("step-{i}")
async def work(i: int) -> int:
    return i


@zart.durable("bench-10")
async def ten_steps(data: dict[str, Any]) -> int:
    total = 0
    for i in range(10):
        total += await work(i)
    return total


@zart.durable("bench-30")
async def thirty_steps(data: dict[str, Any]) -> int:
    total = 0
    for i in range(30):
        total += await work(i)
    return total


class _Crash:
    """Makes ``bench-resume`` stop after its recorded steps, as if its worker had died there."""

    holding = False
    reached: asyncio.Event | None = None


@zart.step("resume-{i}")
async def resume_work(i: int) -> int:
    return i


@zart.step("resume-final")
async def resume_final() -> int:
    return 1


@zart.durable("bench-resume")
async def resume_handler(data: dict[str, Any]) -> int:
    total = 0
    for i in range(data["n"]):
        total += await resume_work(i)
    if _Crash.holding and _Crash.reached is not None:
        _Crash.reached.set()
        await asyncio.Event().wait()  # never set: the stopping worker cancels the run here
    return total + await resume_final()


def _runner(scheduler: zart.DurableScheduler, handler: Any, expected: int) -> Any:
    async def run_one() -> str:
        execution_id = await scheduler.start(handler, {"n": 1})
        result = await scheduler.wait(execution_id, timeout=WAIT_TIMEOUT)
        if result != expected:
            raise RuntimeError(f"{handler.name} returned {result!r}, not {expected}")
        return execution_id

    return run_one


async def _stored_ms(scheduler: zart.DurableScheduler, execution_ids: list[str]) -> float:
    """Median milliseconds from start to finish as stored (created_at → completed_at)."""
    durations = []
    for execution_id in execution_ids:
        record = await scheduler.status(execution_id)
        assert record.completed_at is not None
        durations.append((record.completed_at - record.created_at).total_seconds() * 1e3)
    return median(durations)


async def _round(scheduler: zart.DurableScheduler, target: Target) -> dict[str, Any]:
    """One timed repetition of each timed workload, after a warm-up; seconds for each."""
    plan = target.plan
    ten = _runner(scheduler, ten_steps, 45)
    thirty = _runner(scheduler, thirty_steps, 435)
    meter = CpuMeter(await postmaster_of(target.url))
    async with scheduler.run_worker(concurrency=IN_FLIGHT, poll_interval=POLL_INTERVAL):
        # Warm-up: connections, prepared statements, SQLAlchemy's compiled cache, the pool.
        await run_sequential(ten, 5)
        await run_sequential(thirty, 2)
        await run_concurrent(ten, IN_FLIGHT)
        with meter.measure() as sequential_cpu:
            short, short_ids = await run_sequential(ten, plan.sequential_workflows)
        long, long_ids = await run_sequential(thirty, plan.sequential_long_workflows)
        with meter.measure() as concurrent_cpu:
            together = await run_concurrent(ten, plan.concurrent_workflows)
    return {
        "sequential": short,
        "sequential_30": long,
        "concurrent": together,
        # CPU of this process (the caller, the worker, its writer thread) and of the server.
        "cpu": {"sequential": sequential_cpu, "concurrent": concurrent_cpu},
        "stored_ms_10": await _stored_ms(scheduler, short_ids),
        "stored_ms_30": await _stored_ms(scheduler, long_ids),
    }


async def _record_steps(scheduler: zart.DurableScheduler, steps: int) -> str:
    """An execution whose current run has ``steps`` recorded steps and no lease: its worker
    stopped while the handler was between two steps (the lease is handed back on stop)."""
    _Crash.holding, _Crash.reached = True, asyncio.Event()
    try:
        async with scheduler.run_worker(
            concurrency=1, poll_interval=POLL_INTERVAL, shutdown_timeout=0.05
        ):
            execution_id = await scheduler.start(resume_handler, {"n": steps})
            await asyncio.wait_for(_Crash.reached.wait(), WAIT_TIMEOUT)
    finally:
        _Crash.holding = False
    return execution_id


async def _resume_one(
    scheduler: zart.DurableScheduler, counter: StatementCounter, steps: int, repetitions: int
) -> dict[str, Any]:
    execution_id = await _record_steps(scheduler, steps)
    run_id = (await scheduler.status(execution_id)).run_id
    loads: list[float] = []
    load_statements: Counter[str] = Counter()
    for _ in range(repetitions):
        async with scheduler.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")  # the connection is checked out and live
            with counter.counting() as counts:
                started = time.perf_counter()
                outcomes = await ConnectionExecutor(conn).run(load_run_outcomes, run_id)
                loads.append(time.perf_counter() - started)
            load_statements = Counter(counts)
        if len(outcomes) != steps:
            raise RuntimeError(f"loaded {len(outcomes)} outcomes, not {steps}")
    finished = asyncio.Event()
    at_finish: dict[str, Any] = {}

    def on_finished(_execution_id: str, _record: Any) -> None:
        # Called once the finish committed: what the resume cost, before the worker goes on.
        at_finish.update(ended=time.perf_counter(), seen=len(counter.events))
        finished.set()

    worker = Worker(
        scheduler.runtime,
        [resume_handler.name],
        WorkerSettings(concurrency=1, poll_interval=QUIET_POLL_INTERVAL),
        on_finished=on_finished,
    )
    with counter.counting():
        await worker.start()  # registers the worker, then claims at once
        await asyncio.wait_for(finished.wait(), WAIT_TIMEOUT)
        events = counter.events[: at_finish["seen"]]
    await worker.stop()
    # The resume starts with the first statement after the worker's registration: the claim.
    registered = max(i for i, (_, kind) in enumerate(events) if kind == "INSERT zart_workers")
    resumed = events[registered + 1 :]
    # The worker's side loops read their own tables meanwhile, or not, depending on timing
    # (the schedules loop's next fire time, a pause-rule reload): counted apart, so the
    # resume's own statements are compared across N.
    side = Counter(kind for _, kind in resumed if _side_loop(kind))
    statements = Counter(kind for _, kind in resumed if not _side_loop(kind))
    claim_started, ended = resumed[0][0], at_finish["ended"]
    result = await scheduler.wait(execution_id, timeout=WAIT_TIMEOUT)
    if result != steps * (steps - 1) // 2 + 1:
        raise RuntimeError(f"the resumed execution returned {result!r}")
    return {
        "recorded_steps": steps,
        "load_ms": median(loads) * 1e3,
        "load_statements": sum(load_statements.values()),
        "resume_ms": (ended - claim_started) * 1e3,
        "resume_statements": sum(statements.values()),
        "resume_statement_kinds": dict(statements),
        "side_loop_statements": dict(side),
    }


def _side_loop(kind: str) -> bool:
    return "zart_schedules" in kind or "zart_pause_rules" in kind


async def _resume(scheduler: zart.DurableScheduler, target: Target) -> dict[str, Any]:
    counter = StatementCounter(scheduler.engine.sync_engine)
    try:
        return {
            str(steps): await _resume_one(scheduler, counter, steps, 5)
            for steps in target.plan.resume_sizes
        }
    finally:
        counter.close()


async def _commit_batch(
    target: Target, workflows: int, poll_interval: float
) -> tuple[dict[str, int], Counter[str]]:
    admin_dsn, database = target.postgres()
    await wait_disconnected(admin_dsn, database)
    before = await postgres_counters(admin_dsn, database)
    scheduler = zart.DurableScheduler(target.url)
    counter = StatementCounter(scheduler.engine.sync_engine)
    try:
        run_one = _runner(scheduler, ten_steps, 45)
        with counter.counting() as counts:
            async with scheduler.run_worker(concurrency=IN_FLIGHT, poll_interval=poll_interval):
                await run_sequential(run_one, workflows)
            statements = Counter(counts)
    finally:
        counter.close()
        await scheduler.close()  # disposes the engine: its backends exit and flush their counts
    await wait_disconnected(admin_dsn, database)
    after = await postgres_counters(admin_dsn, database)
    return counter_delta(before, after), statements


async def _commits(target: Target) -> dict[str, Any]:
    small, large = target.plan.commit_batches
    figures: dict[str, Any] = {"batches": [small, large], "steps_per_workflow": 10}
    for label, poll_interval in (("polling", POLL_INTERVAL), ("quiet", QUIET_POLL_INTERVAL)):
        small_delta, _ = await _commit_batch(target, small, poll_interval)
        large_delta, statements = await _commit_batch(target, large, poll_interval)
        claims = statements.get("WITH…UPDATE zart_executions (claim)", 0)
        figures[label] = {
            "poll_interval": poll_interval,
            "per_workflow": per_workflow_slope((small, small_delta), (large, large_delta)),
            "claim_statements_per_workflow": claims / large,
            "statements_per_workflow": {k: v / large for k, v in sorted(statements.items())},
        }
    return figures


async def measure(target: Target, phase: str) -> dict[str, Any]:
    scheduler = zart.DurableScheduler(target.url)
    try:
        await scheduler.migrate()
        if phase == "round":
            return await _round(scheduler, target)
        figures: dict[str, Any] = {"resume": await _resume(scheduler, target)}
    finally:
        await scheduler.close()
    if target.backend == "postgresql":
        figures["commits"] = await _commits(target)
    return figures


def main() -> None:
    arguments = parse_arguments()
    write_figures(asyncio.run(measure(arguments.target, arguments.phase)), arguments.out)


if __name__ == "__main__":
    main()
