"""An application's alembic environment and Zart's migrations in one database: each keeps its
own version table, neither touches the other's tables, and the application's autogenerate
(with ``zart.migrations.app_include_name``) does not see Zart's tables."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from zart.database import create_engine
from zart.migrations import (
    VERSION_TABLE,
    app_include_name,
    check,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from zart.models import metadata

APP_ENV = Path(__file__).parent / "app_alembic"


@pytest.fixture
async def engine(empty_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(empty_database_url)
    yield engine
    await engine.dispose()


async def run_app_alembic(engine: AsyncEngine, action: str, revision: str) -> None:
    """``alembic upgrade|downgrade`` of the application, on a connection of ours."""

    def run(connection: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(APP_ENV))
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def app_revision(engine: AsyncEngine) -> str | None:
    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def app_autogenerate_diff(engine: AsyncEngine, **options: Any) -> list[Any]:
    """What the application's autogenerate would put in its next revision."""
    from sqlalchemy import Column, Integer, MetaData, String, Table

    app = MetaData()
    Table(
        "users",
        app,
        Column("id", Integer, primary_key=True),
        Column("email", String(200), nullable=False),
    )

    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"target_metadata": app, **options})
        return list(compare_metadata(context, app))

    async with engine.connect() as conn:
        return await conn.run_sync(compare)


async def tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))


async def test_the_applications_alembic_and_zarts_migrations_live_side_by_side(
    engine: AsyncEngine,
) -> None:
    await run_app_alembic(engine, "upgrade", "head")
    await upgrade(engine)
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO users (id, email) VALUES (1, 'ada@example.com')"))

    # Two histories, two version tables.
    assert await app_revision(engine) == "app0001"
    assert await current_revision(engine) == head_revision()
    assert await tables(engine) == {"users", "alembic_version", VERSION_TABLE, *metadata.tables}
    # Zart sees no drift from the app's tables; the app's autogenerate, filtered, sees none
    # from Zart's (unfiltered it would propose dropping every one of them).
    assert (await check(engine)).ok
    assert await app_autogenerate_diff(engine, include_name=app_include_name()) == []
    unfiltered = await app_autogenerate_diff(engine)
    assert {d[1].name for d in unfiltered if d[0] == "remove_table"} == {
        VERSION_TABLE,
        *metadata.tables,
    }

    # Each undoes only its own.
    await downgrade(engine, "base")
    assert await app_revision(engine) == "app0001"
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT email FROM users")) == "ada@example.com"
    await upgrade(engine)
    await run_app_alembic(engine, "downgrade", "base")
    assert await current_revision(engine) == head_revision()
    assert (await check(engine)).ok
    assert "users" not in await tables(engine)


@pytest.mark.postgresql_only
async def test_zart_in_a_schema_of_its_own_is_invisible_to_the_applications_autogenerate(
    engine: AsyncEngine,
) -> None:
    await run_app_alembic(engine, "upgrade", "head")
    await upgrade(engine, schema="durable")

    assert await tables(engine) == {"users", "alembic_version"}
    assert (await check(engine, schema="durable")).ok
    filtered = app_include_name(schema="durable")
    assert await app_autogenerate_diff(engine, include_schemas=True, include_name=filtered) == []
