"""Migrations against real databases: they build exactly the models, undo cleanly, run safely
from several processes at once and never touch the application's own tables."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import T0, claim, new_execution
from zart.database import create_engine, with_schema
from zart.migrations import (
    VERSION_TABLE,
    check,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from zart.models import metadata

ZART_TABLES = set(metadata.tables)


async def _tables(engine: AsyncEngine, schema: str | None = None) -> set[str]:
    def names(conn: Connection) -> set[str]:
        return set(inspect(conn).get_table_names(schema=schema))

    async with engine.connect() as conn:
        return await conn.run_sync(names)


@pytest.fixture
async def empty_engine(empty_database_url: str) -> AsyncEngine:
    engine = create_engine(empty_database_url)
    yield engine  # type: ignore[misc]
    await engine.dispose()


async def test_upgrade_builds_exactly_the_models(empty_engine: AsyncEngine) -> None:
    assert await current_revision(empty_engine) is None
    before = await check(empty_engine)
    assert not before.ok

    await upgrade(empty_engine)

    assert await _tables(empty_engine) == ZART_TABLES | {VERSION_TABLE}
    assert await current_revision(empty_engine) == head_revision()
    result = await check(empty_engine)
    assert result.differences == ()
    assert result.ok


async def test_downgrade_to_base_and_back(empty_engine: AsyncEngine) -> None:
    await upgrade(empty_engine)

    await downgrade(empty_engine, "base")

    assert await _tables(empty_engine) == {VERSION_TABLE}
    assert await current_revision(empty_engine) is None

    await upgrade(empty_engine)

    assert (await check(empty_engine)).ok
    async with empty_engine.begin() as conn:  # the round-tripped schema works
        record = await new_execution(conn)
        assert [c.execution.execution_id for c in await claim(conn, now=T0)] == [
            record.execution_id
        ]


async def test_upgrade_is_a_no_op_at_head(empty_engine: AsyncEngine) -> None:
    await upgrade(empty_engine)
    async with empty_engine.begin() as conn:
        await new_execution(conn, execution_id="kept")

    await upgrade(empty_engine)

    async with empty_engine.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM zart_executions"))
    assert count == 1


async def test_the_applications_tables_and_alembic_history_are_left_alone(
    empty_engine: AsyncEngine,
) -> None:
    app = MetaData()
    Table("users", app, Column("id", Integer, primary_key=True), Column("email", String(100)))
    Table("alembic_version", app, Column("version_num", String(32), primary_key=True))
    async with empty_engine.begin() as conn:
        await conn.run_sync(app.create_all)
        await conn.execute(text("INSERT INTO alembic_version VALUES ('app_rev_1')"))
        await conn.execute(text("INSERT INTO users VALUES (1, 'a@b.c')"))

    await upgrade(empty_engine)
    assert (await check(empty_engine)).ok  # the app's tables are not reported as drift
    await downgrade(empty_engine, "base")

    assert {"users", "alembic_version"} <= await _tables(empty_engine)
    async with empty_engine.connect() as conn:
        assert await conn.scalar(text("SELECT version_num FROM alembic_version")) == "app_rev_1"
        assert await conn.scalar(text("SELECT email FROM users")) == "a@b.c"


@pytest.mark.postgresql_only
async def test_concurrent_upgrades_from_several_processes_are_safe(
    empty_database_url: str,
) -> None:
    # Separate engines stand for separate processes: each has its own connections.
    engines = [create_engine(empty_database_url) for _ in range(4)]
    try:
        await asyncio.gather(*(upgrade(engine) for engine in engines))
        result = await check(engines[0])
    finally:
        for engine in engines:
            await engine.dispose()
    assert result.ok, result


@pytest.mark.postgresql_only
async def test_a_schema_of_its_own(empty_engine: AsyncEngine) -> None:
    await upgrade(empty_engine, schema="zart_jobs")

    assert await _tables(empty_engine, "zart_jobs") == ZART_TABLES | {VERSION_TABLE}
    assert await _tables(empty_engine) == set()  # nothing in the default schema
    assert await current_revision(empty_engine, schema="zart_jobs") == head_revision()
    assert (await check(empty_engine, schema="zart_jobs")).ok
    async with with_schema(empty_engine, "zart_jobs").begin() as conn:
        record = await new_execution(conn)
        (claimed,) = await claim(conn, now=T0)
    assert claimed.execution.execution_id == record.execution_id

    await downgrade(empty_engine, "base", schema="zart_jobs")
    assert await _tables(empty_engine, "zart_jobs") == {VERSION_TABLE}


async def test_two_databases_migrated_at_once_in_one_process(
    empty_database_url: str, tmp_path: Path
) -> None:
    """Alembic keeps the running migration in module globals: two at once in one process
    (this backend's database and a SQLite file) must not run in each other's context."""
    engines = [
        create_engine(empty_database_url),
        create_engine(f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"),
    ]
    try:
        await asyncio.gather(
            *(upgrade(engine) for engine in engines), *(upgrade(e) for e in engines)
        )
        for engine in engines:
            assert await _tables(engine) == ZART_TABLES | {VERSION_TABLE}
            assert (await check(engine)).ok
    finally:
        for engine in engines:
            await engine.dispose()
