"""The floor a step is compared with: one bare single-row INSERT and its COMMIT.

Three ways, on the same database as Zart and through the same driver stack:

- ``sqlalchemy_transaction``: ``async with engine.begin(): INSERT`` on an engine built by
  ``zart.database.create_engine`` (asyncpg, or aiosqlite with Zart's WAL / synchronous=FULL /
  BEGIN IMMEDIATE set-up) — the brief's baseline, and what the step budget is measured against;
- ``sqlalchemy_autocommit`` (PostgreSQL): the same INSERT on an AUTOCOMMIT connection, which is
  how Zart writes a checkpoint (no BEGIN / COMMIT round trips);
- ``raw_driver``: the driver alone, autocommit, on one open connection (asyncpg; the standard
  library's sqlite3 with the same pragmas), for reference.

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

from bench.measure import Target, parse_arguments, write_figures
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


async def _raw_asyncpg(url: str, count: int) -> float:
    parsed = make_url(url)
    conn = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )
    try:
        sql = "INSERT INTO bench_baseline (name, value, created_at) VALUES ($1, $2, $3)"
        started = time.perf_counter()
        for index in range(count):
            row = _row(index)
            await conn.execute(sql, row["name"], row["value"], row["created_at"])
        return time.perf_counter() - started
    finally:
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


async def measure(target: Target) -> dict[str, float]:
    """One round: each way once after a warm-up, interleaved; seconds per way."""
    count = target.plan.baseline_inserts
    engine = create_engine(target.url)
    ways: dict[str, Callable[[], Awaitable[float]]] = {
        "sqlalchemy_transaction": lambda: _transactions(engine, count)
    }
    if target.backend == "postgresql":
        ways["sqlalchemy_autocommit"] = lambda: _autocommit(engine, count)
        ways["raw_driver"] = lambda: _raw_asyncpg(target.url, count)
    else:
        database = str(make_url(target.url).database)
        ways["raw_driver"] = lambda: asyncio.to_thread(_raw_sqlite, database, count)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        for way in ways.values():  # warm-up: connections, prepared statements, caches
            await way()
        return {name: await way() for name, way in ways.items()}
    finally:
        await engine.dispose()


def main() -> None:
    arguments = parse_arguments()
    if arguments.phase == "round":
        figures = asyncio.run(measure(arguments.target))
        write_figures({"baseline": figures}, arguments.out)
    else:
        write_figures({}, arguments.out)


if __name__ == "__main__":
    main()
