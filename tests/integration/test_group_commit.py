"""Group commit on both backends, through the batcher the runtime writes checkpoints with: a
refused item does not fail its group, and on SQLite the checkpoints of concurrent runs share
transactions (one fsync each); each caller still gets its own answer."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import zart
from tests.factories import T0, claim, completed_step, new_execution, run_on
from zart import DurableScheduler
from zart.errors import LeaseLost
from zart.repositories import steps as steps_repo
from zart.runtime.execution import Runtime
from zart.testing import FakeClock


@zart.step("tick-{i}")
async def tick(i: int) -> int:
    await asyncio.sleep(0)
    return i


@zart.durable("group-commit-ten")
async def ten_ticks(data: dict[str, Any]) -> int:
    return sum([await tick(i) for i in range(10)])


async def test_a_refused_checkpoint_does_not_fail_its_group(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        first = await new_execution(conn)
        kept = await new_execution(conn)
        lost = await new_execution(conn)
        leases = {c.execution.execution_id: c.lease for c in await claim(conn)}
        await conn.execute(  # someone else took `lost` over
            text("UPDATE zart_executions SET lease_token = 'other' WHERE execution_id = :e"),
            {"e": lost.execution_id},
        )
    runtime = Runtime(engine, clock=FakeClock(T0))
    runtime.open_connections()
    try:
        # The first writes alone; the two arriving meanwhile go out as one group.
        outcomes = await asyncio.gather(
            *(
                runtime.write_checkpoint(
                    leases[e.execution_id], completed_step(e.run_id, "a", i), None, None
                )
                for i, e in enumerate((first, kept, lost))
            ),
            return_exceptions=True,
        )
    finally:
        await runtime.close_connections()
    async with engine.connect() as conn:
        stored = await run_on(conn, steps_repo.load_run_outcomes, kept.run_id)
        nothing = await run_on(conn, steps_repo.load_run_outcomes, lost.run_id)
    assert [getattr(o, "result", None) for o in outcomes[:2]] == [0, 1]
    assert stored == {"a": outcomes[1]}
    assert isinstance(outcomes[2], LeaseLost)
    assert nothing == {}


async def test_concurrent_checkpoints_share_commits(database_url: str) -> None:
    """While a worker runs, checkpoints and finishes go through the store's group operations:
    far fewer of the store's operations (transactions on SQLite, statements on PostgreSQL)
    than checkpoints."""
    async with DurableScheduler(database_url) as scheduler:
        ids = [await scheduler.start(ten_ticks, {}) for _ in range(16)]
        store = scheduler.store
        operations = 0
        original = store.run

        async def counted(operation: Any, /, *args: Any, **kwargs: Any) -> Any:
            nonlocal operations
            operations += 1
            return await original(operation, *args, **kwargs)

        store.run = counted  # type: ignore[method-assign]
        async with scheduler.run_worker(concurrency=16, poll_interval=0.02):
            results = [await scheduler.wait(eid, timeout=30) for eid in ids]
        assert not store.is_open  # closed with the last worker

    assert results == [45] * 16
    # 160 checkpoints, 16 finishes, the claims and heartbeats: far fewer than checkpoints.
    assert 0 < operations < 16 * 10, operations
