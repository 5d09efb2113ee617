"""Fixtures shared by every tier: real databases, never mocks.

PostgreSQL: a throwaway server started once per test session (``tests/pg_server.py``) unless
``ZART_TEST_DATABASE_URL`` names one. A template database is migrated once; tests that need
several connections get a fresh clone of it (``database_url``), repository tests get a
connection to a shared migrated database whose transaction is rolled back (``connection``).
SQLite: the same, with a migrated template file copied per test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tests.factories import worker_store
from tests.pg_server import PostgresServer, connect_existing, start_postgres
from zart import DurableScheduler
from zart.database import create_engine
from zart.migrations import upgrade
from zart.repositories.store import Store

BACKENDS = ("postgresql", "sqlite")
TEMPLATE = "zart_template"
SHARED = "zart_shared"


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    existing = os.environ.get("ZART_TEST_DATABASE_URL")
    server = connect_existing(existing) if existing else start_postgres()
    prefix = f"zt{uuid.uuid4().hex[:8]}_"
    server.prefix = prefix  # type: ignore[attr-defined]
    try:
        server.create_database(prefix + TEMPLATE)
        asyncio.run(_migrate(server.url(prefix + TEMPLATE)))
        server.create_database(prefix + SHARED, template=prefix + TEMPLATE)
        yield server
    finally:
        if existing:
            for name in (SHARED, TEMPLATE):
                server.drop_database(prefix + name)
        server.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


def _sqlite_copy(template: Path, target: Path) -> str:
    shutil.copyfile(template, target)
    return f"sqlite+aiosqlite:///{target}"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``postgresql_only`` exercise PostgreSQL behaviour (row locks, SKIP LOCKED,
    schemas): their SQLite variants are not collected rather than reported as skipped."""
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        params = getattr(item, "callspec", None)
        backend = params.params.get("backend") if params is not None else None
        if backend == "sqlite" and item.get_closest_marker("postgresql_only"):
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh migrated database of its own for this test."""
    if backend == "sqlite":
        yield _sqlite_copy(request.getfixturevalue("sqlite_template"), tmp_path / "zart.db")
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"{server.prefix}{uuid.uuid4().hex[:12]}"  # type: ignore[attr-defined]
    server.create_database(name, template=server.prefix + TEMPLATE)  # type: ignore[attr-defined]
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture
def empty_database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """A fresh database with no tables at all (for migration tests)."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"{server.prefix}e{uuid.uuid4().hex[:12]}"  # type: ignore[attr-defined]
    server.create_database(name)
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def shared_sqlite(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return _sqlite_copy(sqlite_template, tmp_path_factory.mktemp("shared") / "shared.db")


@pytest.fixture
def shared_url(backend: str, request: pytest.FixtureRequest) -> str:
    """The shared migrated database of ``backend`` (sync, so that starting PostgreSQL happens
    outside any event loop)."""
    if backend == "sqlite":
        url: str = request.getfixturevalue("shared_sqlite")
        return url
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.url(server.prefix + SHARED)  # type: ignore[attr-defined]


@pytest.fixture
async def connection(shared_url: str) -> AsyncIterator[AsyncConnection]:
    """A connection to a shared migrated database, inside a transaction rolled back after the
    test: fast isolation for repository tests that need only one connection."""
    engine = create_engine(shared_url)
    try:
        async with engine.connect() as conn:
            transaction = await conn.begin()
            try:
                yield conn
            finally:
                await transaction.rollback()
    finally:
        await engine.dispose()


@pytest.fixture
async def scheduler(database_url: str) -> AsyncIterator[DurableScheduler]:
    """A scheduler on a fresh database of its own (no worker running yet)."""
    async with DurableScheduler(database_url) as scheduler:
        yield scheduler


@pytest.fixture
async def suspending(database_url: str) -> AsyncIterator[DurableScheduler]:
    """A scheduler on which every wait suspends (nothing waits in memory)."""
    async with DurableScheduler(database_url, inline_wait_limit=0) as scheduler:
        yield scheduler


@pytest.fixture
async def store(engine: AsyncEngine) -> AsyncIterator[Store]:
    """A fresh database's store with the worker's own connections open: repository tests on
    the path the worker runs (asyncpg connections, SQLite's writer thread)."""
    async with worker_store(engine) as opened:
        yield opened
