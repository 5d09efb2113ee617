"""Engines: build one from a database URL, or adopt the application's own.

PostgreSQL goes through asyncpg. SQLite (through aiosqlite) is the embedded default; it gets
WAL mode, a busy timeout and ``BEGIN IMMEDIATE`` transactions, which make every transaction
take SQLite's single write lock up front: the claim, the checkpoint and the fence then cannot
interleave with another writer, and no transaction fails half-way on a lock upgrade.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
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


def with_schema(engine: AsyncEngine, schema: str | None) -> AsyncEngine:
    """Return ``engine`` rendering Zart's tables in ``schema`` (unchanged when ``None``).

    The models are declared without a schema; SQLAlchemy's ``schema_translate_map`` puts them in
    the configured one at statement compile time, so the same models serve every deployment.
    """
    if schema is None:
        return engine
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ConfigurationError(
            f"invalid schema name {schema!r}: use letters, digits and underscores"
            " (starting with a letter or underscore, at most 63 characters)"
        )
    if engine.dialect.name == "sqlite":
        raise ConfigurationError("schema= is a PostgreSQL option; SQLite has no schemas")
    return engine.execution_options(schema_translate_map={None: schema})


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


# ---------------------------------------------------------------------------------------------
# Driver connections: the worker's hot path on PostgreSQL (see zart.repositories.raw)

#: Driver connections a worker process keeps for its hot statements, at most.
DRIVER_CONNECTIONS = 16


@dataclass(frozen=True, slots=True)
class DriverSession:
    """One asyncpg connection lent out, with what the repositories need to compile for it."""

    connection: Any
    dialect: Dialect
    schema_map: Mapping[Any, Any] | None


class DriverConnections:
    """A few asyncpg connections, opened the engine's way and then kept out of its pool, for
    the statements a worker runs all the time (checkpoints, claims, finishes).

    Lending one out costs a list pop; the engine's pool checkout costs ~130 µs of CPU here.
    Errors of the driver surface as SQLAlchemy errors (:class:`~sqlalchemy.exc.OperationalError`
    when the connection broke, :class:`~sqlalchemy.exc.DatabaseError` otherwise), so callers
    treat them as they treat the engine's. A connection that broke, or whose user was
    cancelled mid-statement, is closed rather than lent again.
    """

    def __init__(self, engine: AsyncEngine, size: int = DRIVER_CONNECTIONS) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("driver connections are for PostgreSQL (asyncpg)")
        self._engine = engine
        self._schema_map: Mapping[Any, Any] | None = engine.get_execution_options().get(
            "schema_translate_map"
        )
        self._slots = asyncio.Semaphore(size)
        self._idle: list[tuple[AsyncConnection, Any]] = []
        self._closed = False

    async def _open(self) -> tuple[AsyncConnection, Any]:
        owner = await self._engine.connect()
        try:
            raw = await owner.get_raw_connection()
            connection = raw.driver_connection
            raw.detach()  # ours until closed: it no longer counts in the engine's pool
        except BaseException:
            await owner.close()
            raise
        return owner, connection

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[DriverSession]:
        """A connection in autocommit: each statement commits on its own."""
        async with self._slots:
            if self._closed:
                raise OperationalError(None, None, Exception("the worker's connections are closed"))
            try:
                entry = self._idle.pop() if self._idle else await self._open()
            except (TimeoutError, OSError) as exc:
                raise OperationalError(None, None, exc) from exc
            healthy = False
            try:
                yield DriverSession(entry[1], self._engine.dialect, self._schema_map)
                healthy = True
            except (TimeoutError, OSError) as exc:
                raise OperationalError(None, None, exc) from exc
            except Exception as exc:
                failure = _driver_error(exc)
                healthy = failure is None or isinstance(failure, DatabaseError)
                if failure is None:
                    raise
                raise failure from exc
            finally:
                if healthy and not self._closed and not entry[1].is_closed():
                    self._idle.append(entry)
                else:
                    await _discard(entry)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[DriverSession]:
        """A connection inside a transaction, committed when the block ends without error."""
        async with self.connection() as session, session.connection.transaction():
            yield session

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for entry in idle:
            await _discard(entry)


def _driver_error(exc: Exception) -> Exception | None:
    """The SQLAlchemy error for an asyncpg one (``None``: not the driver's)."""
    import asyncpg  # type: ignore[import-untyped]

    if isinstance(exc, asyncpg.InterfaceError | asyncpg.exceptions.ConnectionFailureError):
        return OperationalError(None, None, exc)
    if isinstance(exc, asyncpg.PostgresError):
        return DatabaseError(None, None, exc)
    return None


async def _discard(entry: tuple[AsyncConnection, Any]) -> None:
    owner, connection = entry
    try:
        if not connection.is_closed():
            connection.terminate()
    finally:
        with contextlib.suppress(Exception):  # already terminated: nothing left to release
            await owner.close()
