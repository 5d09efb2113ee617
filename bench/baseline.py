"""The floor a step is compared with: one bare single-row INSERT and its COMMIT.

Three ways, on the same database as Zart and through the same driver stack:

- ``sqlalchemy_transaction``: ``async with engine.begin(): INSERT`` on an engine built by
  ``zart.database.create_engine`` (asyncpg, or aiosqlite with Zart's WAL / synchronous=FULL /
  BEGIN IMMEDIATE set-up) — the brief's baseline, and what the step budget is measured against;
- ``sqlalchemy_autocommit`` (PostgreSQL): the same INSERT on an AUTOCOMMIT connection, which is
  how Zart writes a checkpoint (no BEGIN / COMMIT round trips);
- ``raw_driver``: the driver alone, autocommit, on one open connection (asyncpg; the standard
  library's sqlite3 with the same pragmas): the hardware's floor for one caller, what a
  sequential workflow's S + 2 commits are compared with;
- ``raw_driver_concurrent`` (PostgreSQL): the same on ``IN_FLIGHT`` (64) connections at once,
  the floor of the concurrent workload (commits per second at its width).

Run by ``bench.run`` as ``python -m bench.baseline --target JSON --out FILE``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, String, Table, insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.measure import IN_FLIGHT, Target, parse_arguments, write_figures
from zart.database import create_engine

metadata = MetaData()
baseline_rows = Table(
    "bench_baseline",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("value", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


def _row(index: int) -> dict[str, Any]:
    return {"name": f"step-{index}", "value": index, "created_at": datetime.now(UTC)}


async def _transactions(engine: AsyncEngine, count: int) -> float:
    statement = insert(baseline_rows)
    started = time.perf_counter()
    for index in range(count):
        async with engine.begin() as conn:
            await conn.execute(statement, _row(index))
    return time.perf_counter() - started


async def _autocommit(engine: AsyncEngine, count: int) -> float:
    statement = insert(baseline_rows)
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    started = time.perf_counter()
    for index in range(count):
        async with autocommit.connect() as conn:
            await conn.execute(statement, _row(index))
    return time.perf_counter() - started


_RAW_INSERT = "INSERT INTO bench_baseline (name, value, created_at) VALUES ($1, $2, $3)"


async def _connect(url: str) -> Any:
    parsed = make_url(url)
    return await asyncpg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )


async def _inserts(conn: Any, count: int) -> None:
    for index in range(count):
        row = _row(index)
        await conn.execute(_RAW_INSERT, row["name"], row["value"], row["created_at"])


async def _raw_asyncpg(url: str, count: int) -> float:
    conn = await _connect(url)
    try:
        started = time.perf_counter()
        await _inserts(conn, count)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def _raw_asyncpg_concurrent(url: str, connections: int, each: int) -> float:
    """``connections`` connections inserting ``each`` rows at once, each INSERT its own
    commit: the server's commit rate at the concurrent workload's width (its commits share
    WAL flushes, as the workload's do)."""
    conns = [await _connect(url) for _ in range(connections)]
    try:
        started = time.perf_counter()
        await asyncio.gather(*(_inserts(conn, each) for conn in conns))
        return time.perf_counter() - started
    finally:
        for conn in conns:
            await conn.close()


def _raw_sqlite(path: str, count: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)  # autocommit: each INSERT commits
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        sql = "INSERT INTO bench_baseline (name, value, created_at) VALUES (?, ?, ?)"
        started = time.perf_counter()
        for index in range(count):
            row = _row(index)
            conn.execute(sql, (row["name"], row["value"], row["created_at"].isoformat()))
        return time.perf_counter() - started
    finally:
        conn.close()


#: Rows each connection inserts in the concurrent way (IN_FLIGHT connections).
CONCURRENT_EACH = 50


async def measure(target: Target) -> tuple[dict[str, float], dict[str, int]]:
    """One round: each way once after a warm-up, interleaved; seconds per way, and how many
    inserts (commits) each made."""
    count = target.plan.baseline_inserts
    engine = create_engine(target.url)
    ways: dict[str, Callable[[], Awaitable[float]]] = {
        "sqlalchemy_transaction": lambda: _transactions(engine, count)
    }
    inserts = {"sqlalchemy_transaction": count, "raw_driver": count}
    if target.backend == "postgresql":
        ways["sqlalchemy_autocommit"] = lambda: _autocommit(engine, count)
        ways["raw_driver"] = lambda: _raw_asyncpg(target.url, count)
        ways["raw_driver_concurrent"] = lambda: _raw_asyncpg_concurrent(
            target.url, IN_FLIGHT, CONCURRENT_EACH
        )
        inserts["sqlalchemy_autocommit"] = count
        inserts["raw_driver_concurrent"] = IN_FLIGHT * CONCURRENT_EACH
    else:  # one writer at a time: SQLite's floor has no width
        database = str(make_url(target.url).database)
        ways["raw_driver"] = lambda: asyncio.to_thread(_raw_sqlite, database, count)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        for way in ways.values():  # warm-up: connections, prepared statements, caches
            await way()
        return {name: await way() for name, way in ways.items()}, inserts
    finally:
        await engine.dispose()


def main() -> None:
    arguments = parse_arguments()
    if arguments.phase == "round":
        seconds, inserts = asyncio.run(measure(arguments.target))
        write_figures({"baseline": seconds, "inserts": inserts}, arguments.out)
    else:
        write_figures({}, arguments.out)


if __name__ == "__main__":
    main()
