"""Helpers for runtime tests: side-effect journals and gates that handlers and steps use.

Handlers are registered globally by name, so every test module defines its own, with names
unique across the suite. Side effects are journaled per execution id, which keeps the two
backend variants of a test apart.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import timedelta
from typing import Any

import zart
from tests.factories import run_on
from zart.repositories import claims
from zart.repositories import steps as steps_repo

#: (execution_id, label) -> how many times the body ran
runs: defaultdict[tuple[str, str], int] = defaultdict(int)
#: execution_id -> what the handler saw, in order, on every pass
seen: defaultdict[str, list[Any]] = defaultdict(list)
#: execution_id -> gate a step waits on before finishing
gates: dict[str, asyncio.Event] = {}
#: execution_id -> set when a gated step has started
arrived: dict[str, asyncio.Event] = {}


def count(label: str) -> int:
    """Record that ``label`` ran for the current execution; return how often it has."""
    try:
        execution_id = zart.context().execution_id
    except zart.OutsideExecution:
        execution_id = "<outside>"
    key = (execution_id, label)
    runs[key] += 1
    return runs[key]


def times(execution_id: str, label: str) -> int:
    return runs[(execution_id, label)]


def open_gate(execution_id: str) -> asyncio.Event:
    gates[execution_id] = asyncio.Event()
    arrived[execution_id] = asyncio.Event()
    return gates[execution_id]


async def pass_gate() -> None:
    execution_id = zart.context().execution_id
    gate = gates.get(execution_id)
    if gate is not None:
        arrived[execution_id].set()
        await gate.wait()


FAST_WORKER = {"poll_interval": 0.02, "lease_timeout": 5.0, "concurrency": 16}


async def wait_for_status(
    scheduler: zart.DurableScheduler, execution_id: str, status: zart.ExecutionStatus
) -> zart.ExecutionRecord:
    """Poll ``execution_id`` until it has ``status`` (for up to ~5 s); its record then."""
    for _ in range(500):
        record = await scheduler.status(execution_id)
        if record.status is status:
            return record
        await asyncio.sleep(0.01)
    raise AssertionError(f"{execution_id} never became {status}: {record.status}")


async def steps_of(scheduler: zart.DurableScheduler, execution_id: str) -> dict[str, Any]:
    """The current run's step records of ``execution_id``, by name."""
    run_id = (await scheduler.status(execution_id)).run_id
    async with scheduler.engine.connect() as conn:
        return {s.name: s for s in await run_on(conn, steps_repo.list_steps, run_id)}


async def take_over(
    scheduler: zart.DurableScheduler, task_name: str, *, after: timedelta
) -> list[Any]:
    """Claim ``task_name``'s executions as another worker ("thief") would ``after`` from now,
    once their leases had expired. A live worker's heartbeat holds the row now and then while
    it renews, and a claim skips a held row (SKIP LOCKED): claim again until the row is free,
    so that only the lease's expiry decides whether it is due."""
    for _ in range(500):
        async with scheduler.engine.begin() as conn:
            taken = await run_on(
                conn,
                claims.claim_ready_executions,
                worker_id="thief",
                task_names=[task_name],
                limit=1,
                now=scheduler.clock.now() + after,
                lease_timeout=timedelta(minutes=5),
                takeovers=1,
            )
        if taken:
            return taken
        await asyncio.sleep(0.01)
    return []


async def until(condition: Any, what: str) -> None:
    """Wait (up to ~20 s) until ``condition()`` is true."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")
