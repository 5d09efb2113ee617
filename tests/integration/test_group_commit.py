"""SQLite checkpoints of concurrent runs share commits; each caller still gets its own answer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

import zart
from tests.factories import T0, claim, completed_step, new_execution, run_on
from zart import DurableScheduler
from zart.database import SQLiteWriter, create_engine
from zart.errors import LeaseLost
from zart.migrations import upgrade
from zart.repositories import steps as steps_repo
from zart.runtime.checkpoints import GroupCommitter


@zart.step("tick-{i}")
async def tick(i: int) -> int:
    await asyncio.sleep(0)
    return i


@zart.durable("group-commit-ten")
async def ten_ticks(data: dict[str, Any]) -> int:
    return sum([await tick(i) for i in range(10)])


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'group.db'}"
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()
    return url


async def test_a_refused_checkpoint_does_not_fail_its_group(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        async with engine.begin() as conn:
            kept = await new_execution(conn)
            lost = await new_execution(conn)
            leases = {c.execution.execution_id: c.lease for c in await claim(conn)}
            await conn.execute(  # someone else took `lost` over
                text("UPDATE zart_executions SET lease_token = 'other' WHERE execution_id = :e"),
                {"e": lost.execution_id},
            )
        group = GroupCommitter(engine.begin, lambda: T0)
        outcomes = await asyncio.gather(
            group.write(leases[kept.execution_id], completed_step(kept.run_id, "a", 1), None, None),
            group.write(leases[lost.execution_id], completed_step(lost.run_id, "a", 2), None, None),
            return_exceptions=True,
        )
    finally:
        await engine.dispose()

    assert not isinstance(outcomes[0], BaseException)
    assert outcomes[0].result == 1
    assert isinstance(outcomes[1], LeaseLost)


async def test_concurrent_checkpoints_share_commits_on_sqlite(sqlite_url: str) -> None:
    """While a worker runs, SQLite checkpoints go through its writer connection (one thread
    hop per transaction), grouped: far fewer transactions than checkpoints. (The engine's
    commit events no longer see them, so the writer's transactions are counted.)"""
    async with DurableScheduler(sqlite_url) as scheduler:
        ids = [await scheduler.start(ten_ticks, {}) for _ in range(16)]
        async with scheduler.run_worker(concurrency=16, poll_interval=0.02):
            writer = scheduler.runtime.sqlite_writer
            assert writer is not None
            transactions = 0
            original = writer.transaction

            async def counted(work: Any) -> Any:
                nonlocal transactions
                transactions += 1
                return await original(work)

            writer.transaction = counted  # type: ignore[method-assign]
            results = [await scheduler.wait(eid, timeout=30) for eid in ids]
        assert scheduler.runtime.sqlite_writer is None  # closed with the last worker

    assert results == [45] * 16
    # 160 checkpoints, 16 finishes and the claims: far fewer transactions than checkpoints.
    assert 0 < transactions < 16 * 10, transactions


async def test_a_refused_checkpoint_does_not_fail_its_writer_group(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    writer = SQLiteWriter(engine)
    try:
        async with engine.begin() as conn:
            kept = await new_execution(conn)
            lost = await new_execution(conn)
            leases = {c.execution.execution_id: c.lease for c in await claim(conn)}
            await conn.execute(
                text("UPDATE zart_executions SET lease_token = 'other' WHERE execution_id = :e"),
                {"e": lost.execution_id},
            )
        group = GroupCommitter(engine.begin, lambda: T0, sqlite_writer=lambda: writer)
        outcomes = await asyncio.gather(
            group.write(leases[kept.execution_id], completed_step(kept.run_id, "a", 1), None, None),
            group.write(leases[lost.execution_id], completed_step(lost.run_id, "a", 2), None, None),
            return_exceptions=True,
        )
        async with engine.connect() as conn:
            stored = await run_on(conn, steps_repo.load_run_outcomes, kept.run_id)
            nothing = await run_on(conn, steps_repo.load_run_outcomes, lost.run_id)
    finally:
        await writer.close()
        await engine.dispose()
    assert not isinstance(outcomes[0], BaseException)
    assert outcomes[0].result == 1
    assert stored == {"a": outcomes[0]}
    assert isinstance(outcomes[1], LeaseLost)
    assert nothing == {}
