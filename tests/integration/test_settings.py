"""zart.Settings is the one source of Zart's settings: the environment (ZART_*), or code;
DurableScheduler() reads it, run_worker takes its worker options from it; and a database
without Zart's tables is a SchemaMissing error that says how to create them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

import zart
from zart.database import create_engine


@pytest.fixture(autouse=True)
def no_zart_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("ZART_"):
            monkeypatch.delenv(name)


def test_settings_read_the_environment_and_code_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZART_DATABASE_URL", "postgresql+asyncpg://app@db/app")
    monkeypatch.setenv("ZART_SCHEMA", "durable")
    monkeypatch.setenv("ZART_CONCURRENCY", "8")
    monkeypatch.setenv("ZART_INLINE_WAIT_LIMIT", "0")

    from_env = zart.Settings()
    in_code = zart.Settings(concurrency=2, schema="jobs")

    assert from_env.database_url == "postgresql+asyncpg://app@db/app"
    assert from_env.database_schema == "durable"
    assert from_env.concurrency == 8
    assert from_env.inline_wait_limit == timedelta(0)
    assert (in_code.concurrency, in_code.database_schema) == (2, "jobs")
    assert in_code.database_url == "postgresql+asyncpg://app@db/app"  # the rest from ZART_*


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ZART_CONCURRENCY", "many", r"concurrency \(ZART_CONCURRENCY\): Input should be"),
        ("ZART_CONCURRENCY", "0", "concurrency must be at least 1, not 0"),
        ("ZART_INLINE_WAIT_LIMIT", "soon", "invalid inline_wait_limit 'soon'"),
        ("ZART_MAX_PAYLOAD_BYTES", "-1", r"max_payload_bytes \(ZART_MAX_PAYLOAD_BYTES\)"),
    ],
)
def test_a_bad_setting_is_a_configuration_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(zart.ConfigurationError, match=message):
        zart.DurableScheduler("sqlite+aiosqlite:///unused.db")


async def test_a_scheduler_without_url_reads_zart_database_url(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    monkeypatch.setenv("ZART_DATABASE_URL", database_url)
    monkeypatch.setenv("ZART_POLL_INTERVAL", "0.05")
    monkeypatch.setenv("ZART_CONCURRENCY", "3")

    @zart.durable("settings-echo")
    async def echo(text: str) -> str:
        return text

    async with zart.DurableScheduler() as scheduler:
        assert str(scheduler.engine.url) == str(create_engine(database_url).url)
        async with scheduler.run_worker(task_names=[echo.name]) as worker:
            assert worker.settings.concurrency == 3  # from ZART_CONCURRENCY
            assert worker.settings.poll_interval == 0.05
            execution_id = await scheduler.start(echo, "hi")
            assert await scheduler.wait(execution_id, timeout=10) == "hi"
        async with scheduler.run_worker(concurrency=1, task_names=[echo.name]) as worker:
            assert worker.settings.concurrency == 1  # an argument wins


async def test_settings_given_in_code_configure_the_scheduler(database_url: str) -> None:
    settings = zart.Settings(database_url=database_url, inline_wait_limit="0", concurrency=5)

    async with zart.DurableScheduler(settings=settings) as scheduler:
        assert scheduler.runtime.inline_wait_limit == timedelta(0)
        assert scheduler.settings.concurrency == 5
        assert (await scheduler.list_executions()).total == 0


async def test_a_database_without_zarts_tables_is_schema_missing(
    empty_database_url: str,
) -> None:
    async with zart.DurableScheduler(empty_database_url) as scheduler:
        with pytest.raises(zart.SchemaMissing) as missing:
            await scheduler.status("anything")
        assert "zart db upgrade" in str(missing.value)
        assert "scheduler.migrate()" in str(missing.value)
        assert missing.value.table == "zart_executions"
        with pytest.raises(zart.SchemaMissing):
            await scheduler.start("some-task-nobody-runs", {})

        await scheduler.migrate()

        with pytest.raises(zart.ExecutionNotFound):
            await scheduler.status("anything")


async def test_the_default_sqlite_file_without_tables_is_schema_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)

    async with zart.DurableScheduler() as scheduler:  # ./zart.db, nothing migrated
        with pytest.raises(zart.SchemaMissing, match=r"zart\.db \(no table zart_executions\)"):
            await scheduler.list_executions()


@zart.durable("settings-unmigrated")
async def unmigrated(text: str) -> str:
    return text


async def test_a_start_in_the_apps_transaction_without_zarts_tables_is_schema_missing(
    empty_database_url: str, backend: str
) -> None:
    """The statement runs on the application's own connection, not Zart's engine: still the
    clear error, naming the schema Zart's tables were looked for in."""
    from sqlalchemy.ext.asyncio import AsyncSession

    schema = "durable" if backend == "postgresql" else None
    app_engine = create_engine(empty_database_url)
    try:
        async with (
            zart.DurableScheduler(engine=app_engine, schema=schema) as scheduler,
            AsyncSession(app_engine) as session,
        ):
            with pytest.raises(zart.SchemaMissing) as missing:
                await scheduler.start(unmigrated, "hi", session=session)
        assert missing.value.table == "zart_executions"
        assert missing.value.schema == schema
        if schema is not None:
            assert f"schema {schema!r}" in str(missing.value)
    finally:
        await app_engine.dispose()


def test_enqueue_without_zarts_tables_is_schema_missing(empty_database_url: str) -> None:
    from sqlalchemy import create_engine as create_sync_engine
    from sqlalchemy.orm import Session

    from tests.integration.test_transactions import sync_url

    engine = create_sync_engine(sync_url(empty_database_url))
    try:
        with Session(engine) as session, pytest.raises(zart.SchemaMissing, match="zart db upgrade"):
            zart.enqueue(session, unmigrated, "hi")
    finally:
        engine.dispose()


async def test_schedulers_on_one_engine_explain_missing_tables_once(
    empty_database_url: str,
) -> None:
    """One listener per engine, however many schedulers (one per test) it serves."""
    app_engine = create_engine(empty_database_url)
    try:
        for _ in range(3):
            async with zart.DurableScheduler(engine=app_engine) as scheduler:
                with pytest.raises(zart.SchemaMissing):
                    await scheduler.status("anything")
        assert len(app_engine.sync_engine.dialect.dispatch.handle_error) == 1
    finally:
        await app_engine.dispose()


@zart.durable("settings-outdated")
async def outdated(text: str) -> str:
    return text


async def test_tables_an_older_zart_created_are_schema_outdated(empty_database_url: str) -> None:
    """Tables at revision 0006 lack the tags column (0007): a start and a read name the missing
    column and the upgrade to run, rather than the driver's "no such column"; the refused start
    stored nothing, and after the upgrade the same calls work."""
    from sqlalchemy import text

    from zart.migrations import upgrade

    engine = create_engine(empty_database_url)
    try:
        await upgrade(engine, "0006")
        async with zart.DurableScheduler(engine=engine) as scheduler:
            with pytest.raises(zart.SchemaOutdated) as refused:
                await scheduler.start(outdated, "hi", execution_id="o-1")
            assert refused.value.column == "tags"
            assert refused.value.table in (None, "zart_executions")
            assert "older than this version of Zart" in str(refused.value)
            assert "zart db upgrade" in str(refused.value)
            assert isinstance(refused.value, zart.MigrationError)
            with pytest.raises(zart.SchemaOutdated):
                await scheduler.list_executions()
            async with engine.connect() as conn:
                stored = await conn.scalar(text("SELECT count(*) FROM zart_executions"))
            assert stored == 0

            await scheduler.migrate()

            await scheduler.start(outdated, "hi", execution_id="o-1")
            assert (await scheduler.status("o-1")).execution_id == "o-1"
    finally:
        await engine.dispose()


async def test_a_missing_column_in_the_apps_own_statement_stays_the_drivers_error(
    engine: object,
) -> None:
    """Only Zart's statements (those naming a zart_ table) become SchemaOutdated."""
    from sqlalchemy import exc, text
    from sqlalchemy.ext.asyncio import AsyncEngine

    assert isinstance(engine, AsyncEngine)
    async with zart.DurableScheduler(engine=engine):
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE app_orders (id INTEGER PRIMARY KEY)"))
        async with engine.connect() as conn:
            with pytest.raises(exc.DBAPIError) as raised:
                await conn.execute(text("SELECT total FROM app_orders"))
    assert not isinstance(raised.value, zart.SchemaOutdated)
    assert "total" in str(raised.value)
