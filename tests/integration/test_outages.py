"""A worker whose connections are cut under it (every backend of its database terminated, as a
restart or a failover does) rides it out: its loops retry, its runs hand their executions
back, and every execution completes with each finished step run once. The restart of a whole
server, with worker processes, is tests/acceptance/test_database_restart.py."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

import zart
from zart.database import create_engine, explain_errors
from zart.errors import SchemaOutdated
from zart.outages import connection_lost, is_transient

STEPS = 5
tries: Counter[tuple[str, int]] = Counter()


@zart.step("cut-step-{n}")
async def cut_step(n: int) -> int:
    tries[(zart.context().execution_id, n)] += 1
    await asyncio.sleep(0.03)
    return n


@zart.durable("cut-flow")
async def cut_flow(data: dict[str, Any]) -> int:
    return sum([await cut_step(n) for n in range(1, STEPS + 1)])


async def terminate_everyone(database_url: str) -> int:
    """Terminate every other connection to the database (as a server restart does)."""
    url = make_url(database_url)
    connection = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, password=url.password, database="postgres"
    )
    try:
        rows = await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            url.database,
        )
        return len(rows)
    finally:
        await connection.close()


@pytest.mark.postgresql_only
async def test_a_worker_rides_out_its_connections_cut_again_and_again(
    database_url: str, backend: str
) -> None:
    tries.clear()
    async with zart.DurableScheduler(database_url) as scheduler:
        ids = [await scheduler.start(cut_flow, {}, execution_id=f"cut-{i}") for i in range(30)]
        async with scheduler.run_worker(concurrency=8, poll_interval=0.05) as worker:
            cut = 0
            for _ in range(6):
                await asyncio.sleep(0.15)
                cut += await terminate_everyone(database_url)
            results = []
            missed: list[DBAPIError] = []
            for execution_id in ids:
                for _ in range(3):  # the scheduler's own pooled connections were cut too
                    try:
                        results.append(await scheduler.wait(execution_id, timeout=60))
                        break
                    except DBAPIError as exc:
                        missed.append(exc)
            assert worker.in_flight == 0
            outages = worker.runtime.outage.count
    assert cut > 0
    assert all(is_transient(exc) for exc in missed)
    assert results == [sum(range(1, STEPS + 1))] * len(ids)
    assert outages >= 1
    # Every step ran, and a step ran more than once only when it was in flight at a cut.
    assert set(tries) == {(e, n) for e in ids for n in range(1, STEPS + 1)}


@pytest.mark.postgresql_only
async def test_a_cut_connection_is_a_transient_error_and_the_pool_starts_afresh(
    database_url: str, backend: str
) -> None:
    engine = explain_errors(create_engine(database_url, pool_size=3))
    try:
        async with engine.connect() as first, engine.connect() as second:
            await first.execute(text("SELECT 1"))
            await second.execute(text("SELECT 1"))
        await terminate_everyone(database_url)
        # asyncpg's answer varies (InternalClientError "cannot switch to state", "connection
        # is closed"...); SQLAlchemy wraps it in one class or another: is_transient decides.
        with pytest.raises(DBAPIError) as raised:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        assert raised.value.connection_invalidated
        assert is_transient(raised.value)
        assert connection_lost(raised.value)
        # The other pooled connection was cut too, and dropped with the first: no second error.
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()


async def test_an_error_of_the_statement_is_not_transient(database_url: str, backend: str) -> None:
    engine = explain_errors(create_engine(database_url))
    try:
        async with engine.connect() as conn:
            with pytest.raises(SchemaOutdated, match="no_such_column") as outdated:
                await conn.execute(text("SELECT no_such_column FROM zart_executions"))
        assert not is_transient(outdated.value)
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError, match="no_such_column") as raised:
                await conn.execute(text("SELECT no_such_column FROM t"))
        assert not is_transient(raised.value)
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError, match=r"(?i)unique") as raised:
                await conn.execute(text("INSERT INTO t VALUES (1)"))
        assert not is_transient(raised.value)
    finally:
        await engine.dispose()
