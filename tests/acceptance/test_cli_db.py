"""``zart db ...`` as a user runs it: a real process, real databases, effects checked afterwards."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

import zart
from tests.pg_server import PostgresServer
from zart.database import create_engine
from zart.migrations import VERSION_TABLE, alembic_config, current_revision, head_revision
from zart.models import metadata

ZART_TABLES = frozenset(table.name for table in metadata.sorted_tables)
UNREACHABLE_POSTGRESQL = "postgresql+asyncpg://postgres:s3cret@127.0.0.1:1/x"
ZART_SCRIPT = Path(sys.executable).with_name("zart")


def zart_cli(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    script: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m zart ARGS`` (or the installed ``zart`` script) with no ZART_* variables
    but those in ``env``."""
    command = [str(ZART_SCRIPT)] if script else [sys.executable, "-m", "zart"]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    environment.update(env or {})
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def table_names(url: str, schema: str | None = None) -> set[str]:
    async def read() -> set[str]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                names = await conn.run_sync(
                    lambda sync: inspect(sync).get_table_names(schema=schema)
                )
                return set(names)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def revision_of(url: str, schema: str | None = None) -> str | None:
    async def read() -> str | None:
        engine = create_engine(url)
        try:
            return await current_revision(engine, schema=schema)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def execute(url: str, statement: str) -> None:
    async def run() -> None:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(run())


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert result.stdout == ""


@pytest.fixture
def blank_pg_database(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a brand-new PostgreSQL database with no tables at all."""
    name = f"{postgres_server.prefix}empty_{uuid.uuid4().hex[:12]}"  # type: ignore[attr-defined]
    postgres_server.create_database(name)
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def blank_database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a database of ``backend`` in which Zart's tables were never created."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    url: str = request.getfixturevalue("blank_pg_database")
    return url


def test_upgrade_creates_the_schema_in_an_empty_database(
    blank_database_url: str, tmp_path: Path
) -> None:
    assert table_names(blank_database_url) == set()

    result = zart_cli("db", "upgrade", "--database-url", blank_database_url, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Zart schema at revision {head_revision()} (head)\n"
    assert table_names(blank_database_url) == {*ZART_TABLES, VERSION_TABLE}
    assert "zart_executions" in ZART_TABLES
    assert revision_of(blank_database_url) == head_revision()


def test_upgrade_twice_is_a_no_op(database_url: str, tmp_path: Path) -> None:
    result = zart_cli("db", "upgrade", "--database-url", database_url, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "(head)" in result.stdout
    assert revision_of(database_url) == head_revision()


def test_check_exits_0_at_head(database_url: str, tmp_path: Path) -> None:
    result = zart_cli("db", "check", "--database-url", database_url, cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "up to date" in result.stdout


def test_check_exits_1_on_an_empty_database(blank_database_url: str, tmp_path: Path) -> None:
    result = zart_cli("db", "check", "--database-url", blank_database_url, cwd=tmp_path)

    assert result.returncode == 1
    assert "have not been created" in result.stdout
    assert "zart db upgrade" in result.stdout
    assert table_names(blank_database_url) == set()  # checking changed nothing


def test_check_names_the_revision_a_database_is_at(database_url: str, tmp_path: Path) -> None:
    execute(database_url, f"UPDATE {VERSION_TABLE} SET version_num = '0000'")

    result = zart_cli("db", "check", "--database-url", database_url, cwd=tmp_path)

    assert result.returncode == 1
    assert f"at revision 0000, not at the newest revision {head_revision()}" in result.stdout
    assert "zart db upgrade" in result.stdout


def test_check_lists_drift_from_the_models(database_url: str, tmp_path: Path) -> None:
    execute(database_url, "DROP INDEX ix_zart_executions_task_created")

    result = zart_cli("db", "check", "--database-url", database_url, cwd=tmp_path)

    assert result.returncode == 1
    assert "does not match" in result.stdout
    assert "ix_zart_executions_task_created" in result.stdout


def revisions() -> list[str]:
    """Zart's revisions, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


@pytest.mark.parametrize(
    "revision", [["base"], [f"-{len(revisions())}"]], ids=["base", "minus-all"]
)
def test_downgrade_removes_the_tables(
    database_url: str, tmp_path: Path, revision: list[str]
) -> None:
    # As many steps back as there are revisions is base too.
    result = zart_cli("db", "downgrade", *revision, "--database-url", database_url, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "Zart schema at base (no Zart tables)\n"
    assert table_names(database_url) & ZART_TABLES == set()
    assert revision_of(database_url) is None

    again = zart_cli("db", "upgrade", "--database-url", database_url, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert table_names(database_url) >= ZART_TABLES


@pytest.mark.parametrize("revision", [["-1"], []], ids=["minus-1", "default"])
def test_downgrade_goes_one_revision_back(
    database_url: str, tmp_path: Path, revision: list[str]
) -> None:
    result = zart_cli("db", "downgrade", *revision, "--database-url", database_url, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    previous = revisions()[-2]
    assert result.stdout == f"Zart schema at revision {previous} (head is {head_revision()})\n"
    assert revision_of(database_url) == previous
    assert table_names(database_url) >= ZART_TABLES

    again = zart_cli("db", "upgrade", "--database-url", database_url, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert revision_of(database_url) == head_revision()


@pytest.mark.parametrize(
    ("url", "dialect_marker"),
    [
        ("sqlite+aiosqlite:///never-created.db", "created_at DATETIME NOT NULL"),
        # Nothing listens on port 1: the DDL must come without connecting.
        (UNREACHABLE_POSTGRESQL, "created_at TIMESTAMP WITH TIME ZONE NOT NULL"),
    ],
    ids=["sqlite", "postgresql"],
)
def test_sql_prints_the_ddl_without_touching_a_database(
    tmp_path: Path, url: str, dialect_marker: str
) -> None:
    result = zart_cli("db", "sql", "--database-url", url, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE zart_executions" in result.stdout
    assert f"CREATE TABLE {VERSION_TABLE}" in result.stdout
    assert dialect_marker in result.stdout
    assert list(tmp_path.iterdir()) == []  # no SQLite file was created


def test_sql_from_head_to_head_creates_nothing(tmp_path: Path) -> None:
    head = head_revision()
    result = zart_cli("db", "sql", "--from", head, head, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE" not in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_sql_with_a_schema_creates_it_first(tmp_path: Path) -> None:
    result = zart_cli(
        "db", "sql", "--database-url", UNREACHABLE_POSTGRESQL, cwd=tmp_path,
        env={"ZART_SCHEMA": "durable"},
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert 'CREATE SCHEMA IF NOT EXISTS "durable"' in result.stdout


@pytest.mark.parametrize("command", ["upgrade", "downgrade", "check", "sql"])
def test_an_unsupported_url_is_one_error_line(tmp_path: Path, command: str) -> None:
    result = zart_cli("db", command, "--database-url", "mysql://x", cwd=tmp_path)

    assert_one_line_error(result, "unsupported database 'mysql'")


@pytest.mark.parametrize("command", ["upgrade", "downgrade", "check"])
def test_an_unreachable_postgresql_is_one_error_line(tmp_path: Path, command: str) -> None:
    result = zart_cli("db", command, "--database-url", UNREACHABLE_POSTGRESQL, cwd=tmp_path)

    assert_one_line_error(
        result, "cannot connect to postgresql+asyncpg://postgres:***@127.0.0.1:1/x"
    )
    assert "s3cret" not in result.stderr


def test_an_unopenable_sqlite_file_is_one_error_line(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'missing-directory' / 'zart.db'}"

    result = zart_cli("db", "upgrade", "--database-url", url, cwd=tmp_path)

    assert_one_line_error(result, "unable to open database file")


def test_an_unknown_revision_is_one_error_line(database_url: str, tmp_path: Path) -> None:
    result = zart_cli("db", "upgrade", "nonsense", "--database-url", database_url, cwd=tmp_path)

    assert_one_line_error(result, "nonsense")


def test_a_schema_on_sqlite_is_one_error_line(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'zart.db'}"

    result = zart_cli("db", "upgrade", "--database-url", url, "--schema", "x", cwd=tmp_path)

    assert_one_line_error(result, "PostgreSQL option")


def test_the_database_url_comes_from_the_environment(
    blank_database_url: str, tmp_path: Path
) -> None:
    env = {"ZART_DATABASE_URL": blank_database_url}

    result = zart_cli("db", "upgrade", cwd=tmp_path, env=env, script=True)

    assert result.returncode == 0, result.stderr
    assert table_names(blank_database_url) == {*ZART_TABLES, VERSION_TABLE}
    assert not (tmp_path / "zart.db").exists()  # not the default database
    check = zart_cli("db", "check", cwd=tmp_path, env=env, script=True)
    assert check.returncode == 0, check.stdout


def test_the_option_wins_over_the_environment(blank_database_url: str, tmp_path: Path) -> None:
    env = {"ZART_DATABASE_URL": "mysql://not-used"}

    result = zart_cli("db", "upgrade", "--database-url", blank_database_url, cwd=tmp_path, env=env)

    assert result.returncode == 0, result.stderr
    assert "zart_executions" in table_names(blank_database_url)


def test_the_default_database_is_zart_db_in_the_working_directory(tmp_path: Path) -> None:
    result = zart_cli("db", "upgrade", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "zart_executions" in table_names(f"sqlite+aiosqlite:///{tmp_path / 'zart.db'}")


def test_a_postgresql_schema_holds_the_tables(blank_pg_database: str, tmp_path: Path) -> None:
    env = {"ZART_DATABASE_URL": blank_pg_database, "ZART_SCHEMA": "durable"}

    upgraded = zart_cli("db", "upgrade", cwd=tmp_path, env=env)
    checked = zart_cli("db", "check", cwd=tmp_path, env=env)

    assert upgraded.returncode == 0, upgraded.stderr
    assert table_names(blank_pg_database, schema="durable") == {*ZART_TABLES, VERSION_TABLE}
    assert table_names(blank_pg_database) == set()
    assert revision_of(blank_pg_database, schema="durable") == head_revision()
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("script", [False, True], ids=["python-m-zart", "zart-script"])
def test_version(tmp_path: Path, script: bool) -> None:
    result = zart_cli("--version", cwd=tmp_path, script=script)

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"zart {zart.__version__}\n"
