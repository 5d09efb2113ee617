"""Engines: build one from a database URL, or adopt the application's own.

PostgreSQL goes through asyncpg. SQLite (through aiosqlite) is the embedded default; it gets
WAL mode, a busy timeout and ``BEGIN IMMEDIATE`` transactions, which make every transaction
take SQLite's single write lock up front: the claim, the checkpoint and the fence then cannot
interleave with another writer, and no transaction fails half-way on a lock upgrade.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from zart.errors import ConfigurationError

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///zart.db"

#: Execution option marking a read-only transaction (see read_only()).
READ_ONLY_OPTION = "zart_read_only"

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

#: How long an SQLite writer waits for the write lock before failing, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def parse_url(url: str | URL) -> URL:
    """Parse and check a database URL, naming the problem when it is not one Zart can use."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError, but be broad about odd input
        raise ConfigurationError(f"invalid database URL {str(url)!r}: {exc}") from exc
    backend = parsed.get_backend_name()
    driver = parsed.get_driver_name()
    if backend == "postgresql":
        if driver != "asyncpg":
            parsed = parsed.set(drivername="postgresql+asyncpg")
    elif backend == "sqlite":
        if driver != "aiosqlite":
            parsed = parsed.set(drivername="sqlite+aiosqlite")
    else:
        raise ConfigurationError(
            f"unsupported database {backend!r} in {parsed.render_as_string(hide_password=True)!r}:"
            " Zart runs on PostgreSQL (postgresql+asyncpg://...) or SQLite"
            " (sqlite+aiosqlite:///file.db)"
        )
    return parsed


def create_engine(url: str | URL, **engine_options: Any) -> AsyncEngine:
    """Create an engine for ``url`` set up for Zart (see the module docstring)."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ConfigurationError(
                "an in-memory SQLite database cannot be shared between the scheduler and its"
                " workers; give a file, e.g. sqlite+aiosqlite:///zart.db"
            )
        try:
            import aiosqlite  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise ConfigurationError(
                "SQLite support needs aiosqlite: pip install 'zart[sqlite]'"
            ) from exc
        engine = create_async_engine(parsed, **engine_options)
        _configure_sqlite(engine)
        return engine
    engine_options.setdefault("pool_pre_ping", False)
    return create_async_engine(parsed, **engine_options)


def read_only(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` for transactions that only read: on SQLite they begin without taking the
    write lock (``BEGIN`` rather than ``BEGIN IMMEDIATE``); elsewhere nothing changes."""
    return engine.execution_options(**{READ_ONLY_OPTION: True})


def check_schema(schema: str | None, dialect_name: str) -> None:
    """Raise :class:`ConfigurationError` unless ``schema`` is usable on this backend."""
    if schema is None:
        return
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ConfigurationError(
            f"invalid schema name {schema!r}: use letters, digits and underscores"
            " (starting with a letter or underscore, at most 63 characters)"
        )
    if dialect_name == "sqlite":
        raise ConfigurationError("schema= is a PostgreSQL option; SQLite has no schemas")


def with_schema(engine: AsyncEngine, schema: str | None) -> AsyncEngine:
    """Return ``engine`` rendering Zart's tables in ``schema`` (unchanged when ``None``).

    The models are declared without a schema; SQLAlchemy's ``schema_translate_map`` puts them in
    the configured one at statement compile time, so the same models serve every deployment.
    """
    check_schema(schema, engine.dialect.name)
    if schema is None:
        return engine
    return engine.execution_options(schema_translate_map={None: schema})


def schema_of(engine: AsyncEngine) -> str | None:
    """The schema :func:`with_schema` gave ``engine`` (``None``: the default one)."""
    translate = engine.get_execution_options().get("schema_translate_map") or {}
    schema: str | None = translate.get(None)
    return schema


@contextmanager
def in_schema(connection: Connection, schema: str | None) -> Iterator[None]:
    """Render Zart's tables in ``schema`` on someone else's connection for the block only.

    For the application's connection (``start(session=...)``, ``zart.enqueue``, a transactional
    step's session): setting the translation for good would also move the application's own
    tables (declared without a schema) into Zart's schema. So it is set for Zart's statements
    and the connection's own setting is put back afterwards; the application's statements,
    before and after, never see it.
    """
    check_schema(schema, connection.dialect.name)
    if schema is None:
        yield
        return
    previous = connection.get_execution_options().get("schema_translate_map")
    connection.execution_options(schema_translate_map={**(previous or {}), None: schema})
    try:
        yield
    finally:
        connection.execution_options(schema_translate_map=previous)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction begins (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # FULL: a commit survives power loss too, not only a crash of the process.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Reads (see read_only) need no write lock: in WAL mode they see the last commit and
        # never wait for a writer.
        read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
