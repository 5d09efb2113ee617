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
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Dialect, ExceptionContext, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from zart.errors import ConfigurationError, SchemaMissing

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///zart.db"

#: Execution option marking a read-only transaction (see read_only()).
READ_ONLY_OPTION = "zart_read_only"

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

#: How long an SQLite writer waits for the write lock before failing, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 30_000

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
    "PRAGMA foreign_keys=ON",
    # FULL: a commit survives power loss too, not only a crash of the process.
    "PRAGMA synchronous=FULL",
)

T = TypeVar("T")


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
                "SQLite support needs aiosqlite: pip install 'zart-durable[sqlite]'"
            ) from exc
        engine = create_async_engine(parsed, **engine_options)
        _configure_sqlite(engine)
        return engine
    engine_options.setdefault("pool_pre_ping", False)
    return create_async_engine(parsed, **engine_options)


_MISSING_TABLE = re.compile(
    r"no such table: (?:\w+\.)?(?P<sqlite>zart_\w+)"  # SQLite
    r'|relation "(?:\w+\.)?(?P<pg>zart_\w+)" does not exist'  # PostgreSQL
)


def explain_missing_tables(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` (a view of it: the application's own engine is left as it was) on which a
    statement that meets a missing Zart table raises :class:`~zart.errors.SchemaMissing`,
    saying how to create the tables, rather than the driver's ``no such table`` error."""
    view = engine.execution_options()
    url = engine.url.render_as_string(hide_password=True)
    schema = schema_of(engine)

    @event.listens_for(view.sync_engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        found = _MISSING_TABLE.search(str(context.original_exception))
        if found is not None:
            table = found["sqlite"] or found["pg"]
            raise SchemaMissing(table, url, schema) from context.sqlalchemy_exception

    return view


def read_only(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` for connections that only read. On SQLite their transactions begin without
    taking the write lock (``BEGIN`` rather than ``BEGIN IMMEDIATE``). On PostgreSQL they run
    in autocommit: a status read is one round trip instead of three (``BEGIN``, the read,
    ``ROLLBACK``); under READ COMMITTED each statement takes its own snapshot either way."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT", **{READ_ONLY_OPTION: True})
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
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
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
DRIVER_CONNECTIONS = 8


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


class SQLiteWriter:
    """SQLite: one stdlib ``sqlite3`` connection, used from one thread of its own, for the
    worker's writes (checkpoints, claims, finishes). A whole transaction, ``BEGIN IMMEDIATE``
    to ``COMMIT``, is one hop to that thread; aiosqlite makes several per statement. Set up as
    the engine's connections are (WAL, ``synchronous=FULL``, the busy timeout, foreign keys).
    Errors surface as SQLAlchemy errors (:class:`~sqlalchemy.exc.OperationalError`)."""

    def __init__(self, engine: AsyncEngine) -> None:
        if engine.dialect.name != "sqlite":
            raise ValueError("the SQLite writer is for SQLite")
        self.dialect = engine.dialect
        self._path = str(engine.url.database)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zart-sqlite")
        self._connection: sqlite3.Connection | None = None

    def _connected(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(
                self._path,
                isolation_level=None,  # transactions are begun explicitly below
                check_same_thread=False,
                timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
            )
            for pragma in _SQLITE_PRAGMAS:
                connection.execute(pragma)
            self._connection = connection
        return self._connection

    async def transaction(self, work: Callable[[DriverSession], T]) -> T:
        """Run ``work`` in a write transaction (committed when it returns, rolled back when it
        raises), in the writer's thread; its result."""

        def run() -> T:
            connection = self._connected()
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = work(DriverSession(connection, self.dialect, None))
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            try:
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            return result

        return await self._in_thread(run)

    async def read(self, work: Callable[[DriverSession], T]) -> T:
        """Run ``work`` outside a transaction (each statement on its own), in the thread."""
        return await self._in_thread(
            lambda: work(DriverSession(self._connected(), self.dialect, None))
        )

    async def _in_thread(self, run: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, run)
        except sqlite3.Error as exc:
            raise OperationalError(None, None, exc) from exc

    async def close(self) -> None:
        def close() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        with contextlib.suppress(sqlite3.Error):
            await asyncio.get_running_loop().run_in_executor(self._executor, close)
        self._executor.shutdown(wait=False)
