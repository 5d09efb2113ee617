"""Zart's suspension and wake-up workloads (DESIGN §7: "event delivery and due timers resume a
waiting execution within 50 ms (p50) on PostgreSQL"; the issue's "10,000 executions sleeping at
once cost no worker memory beyond their rows, and all wake within one second of their due
time").

- **wake** (both backends): an idle in-process worker (``poll_interval`` 0.5 s, the default;
  ``inline_wait_limit=0`` so every wait suspends) and

  - *event*: a handler ``await zart.wait_for_event("go")`` then a step that returns
    ``time.time()``. Once the execution is ``waiting`` (and after a random pause, so the offer
    lands at a random phase of the worker's poll), the event is offered by a **second**
    ``DurableScheduler`` in the same process, which has no worker: the in-process
    ``worker.wake()`` shortcut is not taken, the path is NOTIFY → listener → claim on
    PostgreSQL and the poll on SQLite. Latency = the step's ``time.time()`` - the time just
    before ``offer_event``.
  - *timer*: a handler ``await zart.sleep("nap", 1.0)`` (suspends) then the same step.
    Lateness = the step's ``time.time()`` - the ``wake_at`` stored on the sleep's step row. The
    executions are started every 0.3 s, so at most four sleep at once and each one's due time
    falls 0.1 s after the last start, when the worker is idle.

- **sleepers**: ``N`` (10,000) executions of ``await zart.sleep_until("due", due)`` then one
  cheap step, all with the same ``due`` (from the payload), on one in-process worker with a
  slot for each (``concurrency=N``: what is measured is how fast they wake, not how fast
  fewer slots get through them; phase ``sleepers-slots`` runs the same crowd again on
  ``concurrency=1000``, where each slot must finish a run before the next sleeper resumes,
  and reports that apart). They are started with concurrent ``scheduler.start`` calls (16 in
  flight, from a second scheduler); a pilot of 1,000 (another task name, due in an hour, left
  waiting) first warms the worker up to its 1000-way peak and measures how long starting and
  suspending takes, and ``due`` is set far enough ahead from that. The worker's RSS
  (``/proc/self/status`` VmRSS, also after ``gc.collect()`` and glibc ``malloc_trim``),
  Python's allocated blocks (``sys.getallocatedblocks``) and asyncio task count are sampled
  before the start, once all are ``waiting``, after N/5 more sleepers joined them (does
  memory grow with sleepers?), every second of the wait until a second before the worker's
  ``claim_ahead`` window (default 2 s before due, where it claims the sleepers and holds
  them in memory on purpose), once more just before due (how many it holds, and what they
  cost) and once all finished. The wake lag of each execution is the stored ``completed_at``
  of the step after its sleep (the resumed handler ran past the sleep and its next step is
  durable) - ``due``; the sleep step's own ``completed_at`` - ``due`` is reported beside it
  as the claim lag (0 for a sleep completed by the worker's claim ahead, which stamps it with
  its wake time).

Run by ``bench.run`` as ``python -m bench.wake --target JSON --out FILE --phase
wake|sleepers|sleepers-slots``.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import random
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

import zart
import zart.worker
from bench.measure import (
    CpuMeter,
    StatementCounter,
    Target,
    cpu_per,
    parse_arguments,
    postmaster_of,
    write_figures,
)
from zart.models import ExecutionRow, StepRow, table_of
from zart.repositories.executors import ConnectionExecutor
from zart.repositories.steps import list_steps

WAIT_TIMEOUT = 300.0
IDLE_POLL_INTERVAL = 0.5  # the worker's default: a wake-up that waited for a poll shows
TIMER_SECONDS = 1.0
TIMER_START_EVERY = 0.3  # s between timer executions' starts (their wakes fall between starts)
START_IN_FLIGHT = 16  # concurrent scheduler.start calls when starting the sleepers
PILOT, PILOT_DUE = 1000, timedelta(hours=1)  # warm-up executions, never due in the bench
# due = start + the pilot's pace x (N + N/5) + 5 s (the pilot's pace includes its warm-up)
DUE_MARGIN, DUE_SLACK_S = 2.0, 5.0
# s between the bench's own polls for "all completed" once due has come (see sleepers())
WAKE_POLL = 0.5

executions = table_of(ExecutionRow)
steps = table_of(StepRow)


@zart.step("resumed")
async def resumed_at() -> float:
    """The first thing the handler does once its wait is over: when that was."""
    return time.time()


@zart.durable("bench-wake-event")
async def wake_on_event(data: dict[str, Any]) -> float:
    await zart.wait_for_event("go")
    return await resumed_at()


@zart.durable("bench-wake-timer")
async def wake_on_timer(data: dict[str, Any]) -> float:
    await zart.sleep("nap", data["seconds"])
    return await resumed_at()


@zart.step("after")
async def after_due() -> int:
    return 1


async def _sleep_then_step(data: dict[str, Any]) -> int:
    await zart.sleep_until("due", datetime.fromtimestamp(data["due"], UTC))
    return await after_due()


sleeper = zart.durable("bench-sleeper")(_sleep_then_step)
pilot_sleeper = zart.durable("bench-sleeper-pilot")(_sleep_then_step)
#: The same crowd again, on a worker with fewer slots than sleepers (its own task name, so
#: the figures read only its executions).
slots_sleeper = zart.durable("bench-sleeper-slots")(_sleep_then_step)


def percentiles(values: list[float]) -> dict[str, Any]:
    """p50 / p90 / max (and min, mean) of ``values``, plus the values themselves."""
    ordered = sorted(values)
    if not ordered:
        return {"count": 0}

    def at(fraction: float) -> float:  # nearest rank
        return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]

    return {
        "count": len(ordered),
        "min": ordered[0],
        "p50": at(0.5),
        "p90": at(0.9),
        "p99": at(0.99),
        "max": ordered[-1],
        "mean": sum(ordered) / len(ordered),
    }


async def _until_status(scheduler: zart.DurableScheduler, execution_id: str, status: str) -> None:
    give_up = time.monotonic() + WAIT_TIMEOUT
    while (await scheduler.status(execution_id)).status.value != status:
        if time.monotonic() > give_up:
            raise RuntimeError(f"{execution_id} never became {status}")
        await asyncio.sleep(0.005)


async def _step(scheduler: zart.DurableScheduler, execution_id: str, name: str) -> Any:
    run_id = (await scheduler.status(execution_id)).run_id
    async with scheduler.engine.connect() as conn:
        steps = await ConnectionExecutor(conn).run(list_steps, run_id)
    found = [s for s in steps if s.name == name]
    return found[0]


# -- wake: one waiting execution at a time, an idle worker ------------------------------------


async def _event_latencies(
    scheduler: zart.DurableScheduler, offerer: zart.DurableScheduler, repetitions: int
) -> dict[str, Any]:
    resumed_ms: list[float] = []
    consumed_ms: list[float] = []
    offer_ms: list[float] = []
    for _ in range(repetitions):
        execution_id = await scheduler.start(wake_on_event, {})
        await _until_status(scheduler, execution_id, "waiting")
        # A random phase of the worker's poll: a wake-up that waited for the poll would show.
        await asyncio.sleep(random.uniform(0.05, IDLE_POLL_INTERVAL))
        offered = time.time()
        await offerer.offer_event(execution_id, "go", {"n": 1})
        committed = time.time()
        stamp = await scheduler.wait(execution_id, timeout=WAIT_TIMEOUT)
        event_step = await _step(scheduler, execution_id, "go")
        resumed_ms.append((stamp - offered) * 1e3)
        consumed_ms.append((event_step.completed_at.timestamp() - offered) * 1e3)
        offer_ms.append((committed - offered) * 1e3)
    return {
        "resumed_ms": percentiles(resumed_ms),
        "event_step_completed_ms": percentiles(consumed_ms),
        "offer_commit_ms": percentiles(offer_ms),
        "samples_ms": resumed_ms,
    }


async def _timer_latencies(scheduler: zart.DurableScheduler, repetitions: int) -> dict[str, Any]:
    began = time.monotonic()

    async def one(index: int) -> tuple[float, float]:
        await asyncio.sleep(max(0.0, began + index * TIMER_START_EVERY - time.monotonic()))
        execution_id = await scheduler.start(wake_on_timer, {"seconds": TIMER_SECONDS})
        stamp = await scheduler.wait(execution_id, timeout=WAIT_TIMEOUT)
        nap = await _step(scheduler, execution_id, "nap")
        wake_at = nap.wake_at.timestamp()
        return (stamp - wake_at) * 1e3, (nap.completed_at.timestamp() - wake_at) * 1e3

    lateness = await asyncio.gather(*(one(i) for i in range(repetitions)))
    return {
        "seconds": TIMER_SECONDS,
        "started_every_s": TIMER_START_EVERY,
        "late_ms": percentiles([late for late, _ in lateness]),
        "sleep_step_completed_late_ms": percentiles([stored for _, stored in lateness]),
        "samples_ms": [late for late, _ in lateness],
    }


async def wake(target: Target) -> dict[str, Any]:
    scheduler = zart.DurableScheduler(target.url, inline_wait_limit=0)
    offerer = zart.DurableScheduler(target.url)  # no worker: NOTIFY (or the poll) must wake it
    try:
        await scheduler.migrate()
        async with scheduler.run_worker(poll_interval=IDLE_POLL_INTERVAL):
            # Warm-up: connections, prepared statements, the listener.
            await _event_latencies(scheduler, offerer, 3)
            await _timer_latencies(scheduler, 2)
            events = await _event_latencies(scheduler, offerer, target.plan.wake_repetitions)
            timers = await _timer_latencies(scheduler, target.plan.wake_repetitions)
    finally:
        await offerer.close()
        await scheduler.close()
    return {
        "wake": {
            "poll_interval": IDLE_POLL_INTERVAL,
            "repetitions": target.plan.wake_repetitions,
            "event": events,
            "timer": timers,
        }
    }


# -- sleepers: N executions asleep at once, all due at the same time --------------------------


def _rss_kib() -> dict[str, int]:
    found = {}
    with open("/proc/self/status") as lines:
        for line in lines:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])  # kB
    return found


def _trim() -> bool:
    """Collect Python's garbage and hand the C heap's free pages back to the kernel
    (glibc ``malloc_trim``), so RSS shows what is held rather than what was once used."""
    gc.collect()
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0) >= 0)
    except (OSError, AttributeError):
        return False


def memory(worker: Any = None) -> dict[str, Any]:
    """The process's resident memory as it is and once trimmed, its peak, and what Python
    holds (allocated blocks, asyncio tasks, the worker's executions in flight)."""
    raw = _rss_kib()
    blocks = sys.getallocatedblocks()
    trimmed = _trim()
    after = _rss_kib()
    return {
        "at": time.time(),
        "rss_mib": raw["VmRSS"] / 1024,
        "rss_trimmed_mib": after["VmRSS"] / 1024 if trimmed else None,
        "peak_rss_mib": raw["VmHWM"] / 1024,
        "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "python_blocks": blocks,
        "python_blocks_after_gc": sys.getallocatedblocks(),
        "tasks": len(asyncio.all_tasks()),
        # by name, so a task held while they wait can be told from the worker's own loops
        "task_names": sorted(task.get_name() for task in asyncio.all_tasks()),
        "in_flight": None if worker is None else worker.in_flight,
        # executions claimed ahead of their due time, held in memory to start then
        "held": None if worker is None else worker.held,
    }


async def _counts(scheduler: zart.DurableScheduler, task_name: str) -> dict[str, int]:
    async with scheduler.engine.connect() as conn:
        rows = await conn.execute(
            select(executions.c.status, func.count())
            .where(executions.c.task_name == task_name)
            .group_by(executions.c.status)
        )
        return {status: count for status, count in rows}


async def _start_many(
    scheduler: zart.DurableScheduler, handler: Any, count: int, due: float
) -> float:
    """Seconds to start ``count`` executions, ``START_IN_FLIGHT`` start() calls at a time
    (that many lanes: no task per execution, so the starting itself holds no memory per
    execution)."""
    left = iter(range(count))

    async def lane() -> None:
        for _ in left:
            await scheduler.start(handler, {"due": due})

    began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(START_IN_FLIGHT)))
    return time.perf_counter() - began


async def _until_count(
    scheduler: zart.DurableScheduler, task_name: str, status: str, count: int, every: float
) -> tuple[float, dict[str, int]]:
    """Wait until ``count`` executions of ``task_name`` have ``status``; when that was seen."""
    give_up = time.monotonic() + 3 * WAIT_TIMEOUT
    while True:
        counts = await _counts(scheduler, task_name)
        if counts.get(status, 0) >= count:
            return time.time(), counts
        if status == "waiting" and counts.get("completed", 0):
            raise RuntimeError(
                f"{task_name}: {counts}: the due time came before all were asleep (the start was"
                " slower than the pilot's pace); raise DUE_MARGIN"
            )
        if time.monotonic() > give_up:
            raise RuntimeError(f"{task_name}: {counts} after {3 * WAIT_TIMEOUT} s")
        await asyncio.sleep(every)


async def sleepers(
    target: Target, handler: Any = sleeper, concurrency: int | None = None
) -> dict[str, Any]:
    """N sleepers of ``handler`` due at once, on one worker with ``concurrency`` slots
    (default: the plan's, else one per sleeper); the figures of the module docstring."""
    count = target.plan.sleepers
    concurrency = concurrency or target.plan.sleepers_concurrency or count
    scheduler = zart.DurableScheduler(target.url, inline_wait_limit=0)
    starter = zart.DurableScheduler(target.url)  # its own pool; no in-process wake shortcut
    samples: dict[str, Any] = {}
    counter = StatementCounter(scheduler.engine.sync_engine)
    try:
        await scheduler.migrate()
        samples["process_start"] = memory()
        async with scheduler.run_worker(concurrency=concurrency) as worker:
            # The worker process set up as `zart worker` sets up its own (docs/workers.md).
            frozen = zart.worker.freeze_startup_objects()
            zart.worker.collect_less_often()
            # Pilot: the worker's 1000-way peak is reached before "before", and the time to
            # start and suspend one execution is measured to place the due time.
            pilot = min(PILOT, concurrency, count)
            began = time.time()
            pilot_start_s = await _start_many(
                starter, pilot_sleeper, pilot, began + PILOT_DUE.total_seconds()
            )
            pilot_waiting_at, _ = await _until_count(
                starter, pilot_sleeper.name, "waiting", pilot, 0.05
            )
            per_execution = (pilot_waiting_at - began) / pilot
            await asyncio.sleep(1.0)
            samples["before"] = memory(worker)
            # Due: after all are started and suspended (the pilot's pace with a margin).
            began = time.time()
            extra = count // 5  # a later wave, to see whether more sleepers cost more memory
            due = began + DUE_MARGIN * per_execution * (count + extra) + DUE_SLACK_S
            start_s = await _start_many(starter, handler, count, due)
            all_started = time.time()
            waiting_at, waiting_counts = await _until_count(
                starter, handler.name, "waiting", count, 0.25
            )
            samples["all_waiting"] = memory(worker)
            # N/5 more sleepers (due in an hour, like the pilot's): does memory grow with them?
            await _start_many(starter, pilot_sleeper, extra, began + PILOT_DUE.total_seconds())
            settled_at, _ = await _until_count(
                starter, pilot_sleeper.name, "waiting", pilot + extra, 0.1
            )
            samples["more_waiting"] = memory(worker)
            # The wait: until a second before the worker claims them ahead (its claim_ahead
            # window before due, where it holds them in memory on purpose, measured apart).
            ahead = worker.settings.claim_ahead
            during: list[dict[str, Any]] = []
            while time.time() < due - ahead - 1.0:
                await asyncio.sleep(min(1.0, due - ahead - 1.0 - time.time()))
                during.append(memory(worker))
            samples["during_wait"] = during
            samples["just_before_due"] = memory(worker)
            await asyncio.sleep(max(0.0, due - 0.1 - time.time()))
            samples["held_at_due"] = memory(worker)
            meter = CpuMeter(await postmaster_of(target.url))
            await asyncio.sleep(max(0.0, due - time.time()))
            batches = _count_claims(worker)
            with counter.counting() as statements, meter.measure() as wake_cpu:
                # Polled every WAKE_POLL s only: each poll is an aggregate over every
                # execution row, run by the server the worker is measured on. When the last
                # one finished comes from the stored completed_at, not from the poll.
                noticed_at, final_counts = await _until_count(
                    starter, handler.name, "completed", count, WAKE_POLL
                )
            counter.events.clear()  # the counter's own log of statements is no worker memory
            samples["all_finished"] = memory(worker)
            await asyncio.sleep(1.0)
            samples["settled"] = memory(worker)
        lags, finishes = await _lags(scheduler, due, task_name=handler.name)
        claim_lags, _ = await _lags(scheduler, due, "due", task_name=handler.name)
    finally:
        counter.close()
        await starter.close()
        await scheduler.close()
    claims = [n for n in batches if n > 0]
    return {
        "count": count,
        "concurrency": concurrency,
        "start": f"scheduler.start, {START_IN_FLIGHT} concurrent calls",
        "pilot": {
            "count": pilot,
            "start_s": pilot_start_s,
            "start_and_suspend_ms_per_execution": per_execution * 1e3,
        },
        "start_s": start_s,
        "starts_per_s": count / start_s,
        "all_started_after_s": all_started - began,
        "all_waiting_after_s": waiting_at - began,
        "more_sleepers": extra,
        "counts_when_waiting": waiting_counts,
        "due_after_start_s": due - began,
        "claim_ahead_s": ahead,
        "frozen_objects": frozen,  # zart.worker.freeze_startup_objects()
        # Idle time before due once everything slept (negative: due came too early, and
        # the lags are not a wake-up's).
        "slack_s": due - settled_at,
        "lag_ms": percentiles(lags),
        "claim_lag_ms": percentiles(claim_lags),
        "last_resumed_after_due_s": max(lags) / 1e3,
        "last_finished_after_due_s": max(finishes),
        "all_completed_noticed_after_due_s": noticed_at - due,
        "resumed_per_s": count / max(max(lags) / 1e3, 1e-9),
        # CPU from due time until all completed, per resumed execution: this process (the
        # worker; the bench's polls for "all completed" are a few of it) and the server.
        "cpu_per_resume": cpu_per(wake_cpu, count),
        "within_1s": sum(1 for lag in lags if lag <= 1000.0),
        "final_counts": final_counts,
        # The worker's statements from due time until all completed.
        "wake_statements_per_execution": {
            kind: n / count for kind, n in sorted(statements.items())
        },
        # The worker's claims from due time on: how many, and how many executions each took.
        "claims": len(claims),
        "empty_claims": len(batches) - len(claims),
        "mean_claim_batch": sum(claims) / len(claims) if claims else None,
        "claim_batches": claims,
        "memory": samples,
    }


def _count_claims(worker: Any) -> list[int]:
    """Record how many executions each of the worker's claims takes from now on (wraps its
    claim method on this instance; the bench's only reach into the worker's internals)."""
    batches: list[int] = []
    claim = worker._claim

    async def counted(*args: Any, **kwargs: Any) -> int:
        taken: int = await claim(*args, **kwargs)
        batches.append(taken)
        return taken

    worker._claim = counted
    return batches


async def _lags(
    scheduler: zart.DurableScheduler,
    due: float,
    step: str = "after",
    task_name: str = sleeper.name,
) -> tuple[list[float], list[float]]:
    """Per execution: the completion of its step ``step`` - due (ms) (``after``: the step after
    the sleep; ``due``: the sleep itself); its completion - due (s)."""
    async with scheduler.engine.connect() as conn:
        rows = await conn.execute(
            select(steps.c.completed_at, executions.c.completed_at)
            .join(executions, executions.c.execution_id == steps.c.execution_id)
            .where(executions.c.task_name == task_name, steps.c.name == step)
        )
        pairs = [(step_done.timestamp(), done.timestamp()) for step_done, done in rows]
    return [(s - due) * 1e3 for s, _ in pairs], [d - due for _, d in pairs]


async def measure(target: Target, phase: str) -> dict[str, Any]:
    if phase == "wake":
        return await wake(target)
    if phase == "sleepers":
        return {"sleepers": await sleepers(target)}
    if phase == "sleepers-slots":
        slots = target.plan.sleepers_slots
        return {"sleepers_slots": await sleepers(target, slots_sleeper, slots)}
    raise ValueError(f"unknown phase {phase!r}")


def main() -> None:
    arguments = parse_arguments()
    # On the event loop `zart worker` runs on (uvloop's where installed), as the worker
    # process here is set up the way `zart worker` sets up its own.
    with asyncio.Runner(loop_factory=zart.worker.event_loop_factory()) as runner:
        figures = runner.run(measure(arguments.target, arguments.phase))
    write_figures(figures, arguments.out)


if __name__ == "__main__":
    main()
