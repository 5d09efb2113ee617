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
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, Engine, ExceptionContext, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DatabaseError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from zart.errors import ConfigurationError, SchemaMissing, SchemaOutdated
from zart.outages import connection_lost
from zart.serialization.common import read_stored_json

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
E = TypeVar("E", AsyncEngine, Engine)


#: ``scheme://user:password@``: the password runs to the last ``@`` (a password may hold one).
_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][\w+.-]*://[^:/@\s]*):(?P<password>\S*)@")


def mask_url(url: str | URL) -> str:
    """``url`` without its password (``***``), for every message, log line and error that
    names a database; a URL that does not parse is masked too."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # malformed: mask what looks like credentials
        return mask_credentials(str(url))


def mask_credentials(text: str) -> str:
    """``text`` (an error message, say) with the password of every URL in it masked."""
    return _CREDENTIALS.sub(r"\g<head>:***@", text)


def parse_url(url: str | URL) -> URL:
    """Parse and check a database URL, naming the problem when it is not one Zart can use."""
    try:
        parsed = make_url(url)
    except Exception:  # sqlalchemy raises ArgumentError, but be broad about odd input
        # The driver's message quotes the URL whole: say what is wrong without it.
        raise ConfigurationError(
            f"invalid database URL {mask_url(url)!r}: expected"
            " postgresql+asyncpg://user:password@host/database or sqlite+aiosqlite:///file.db"
        ) from None
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
            f"unsupported database {backend!r} in {mask_url(parsed)!r}:"
            " Zart runs on PostgreSQL (postgresql+asyncpg://...) or SQLite"
            " (sqlite+aiosqlite:///file.db)"
        )
    return parsed


def create_engine(url: str | URL, **engine_options: Any) -> AsyncEngine:
    """Create an engine for ``url`` set up for Zart (see the module docstring)."""
    parsed = parse_url(url)
    # A stored row the worker cannot read must fail its execution, not the worker's claim.
    engine_options.setdefault("json_deserializer", read_stored_json)
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
                "SQLite support needs aiosqlite, the sqlite extra: pip install aiosqlite"
            ) from exc
        engine = create_async_engine(parsed, **engine_options)
        _configure_sqlite(engine)
        return engine
    engine_options.setdefault("pool_pre_ping", False)
    return create_async_engine(parsed, **engine_options)


_MISSING_TABLE = re.compile(
    r"no such table: (?:\w+\.)?(?P<sqlite>zart_\w+)"  # SQLite
    r'|relation "(?:(?P<schema>\w+)\.)?(?P<pg>zart_\w+)" does not exist'  # PostgreSQL
)


_MISSING_COLUMN = re.compile(
    r"no such column: (?:(?P<sqlite_table>\w+)\.)?(?P<sqlite>\w+)"  # SQLite, a read
    r"|table (?P<sqlite_insert_table>\w+) has no column named (?P<sqlite_insert>\w+)"  # a write
    r'|column "(?P<pg_write>\w+)" of relation "(?P<pg_write_table>\w+)" does not exist'
    r'|column (?:(?P<pg_table>\w+)\.)?"?(?P<pg>\w+)"? does not exist'  # PostgreSQL, a read
)


def _missing_column(message: str, statement: str | None) -> tuple[str, str | None] | None:
    """(column, table) of a missing column in a statement of Zart's (one that names a ``zart_``
    table); the table is ``None`` where the message names none, or only an alias."""
    found = _MISSING_COLUMN.search(message)
    if found is None or "zart_" not in (statement or ""):
        return None
    groups = found.groupdict()
    column = next(groups[k] for k in ("sqlite", "sqlite_insert", "pg_write", "pg") if groups[k])
    table = next(
        (
            groups[k]
            for k in ("sqlite_table", "sqlite_insert_table", "pg_write_table", "pg_table")
            if groups[k]
        ),
        None,
    )
    return column, table if table is not None and table.startswith("zart_") else None


def explain_errors(engine: E) -> E:
    """Make the statements on ``engine`` fail in ways a caller can act on, and return it:

    - a statement that meets a missing Zart table raises :class:`~zart.errors.SchemaMissing`,
      saying how to create the tables, rather than the driver's ``no such table`` /
      ``relation ... does not exist``; one that meets a missing column of a Zart table (tables
      an older Zart created, never upgraded) raises :class:`~zart.errors.SchemaOutdated`,
      saying how to upgrade them;
    - a connection an error shows is gone (:func:`connection_lost`: the server restarted, the
      link dropped) is dropped with every other connection the pool holds, which the same
      event most likely broke too, and a driver error SQLAlchemy passes on as it is (asyncpg's
      ``InternalClientError``, an ``InterfaceError`` on commit) is raised as an
      :class:`~sqlalchemy.exc.OperationalError`: every caller meets a SQLAlchemy error.

    SQLAlchemy runs ``handle_error`` listeners for every engine of a dialect (an
    ``execution_options()`` copy included), so the listener is installed once per dialect:
    it also covers Zart's statements on the application's own connections
    (``start(session=...)``, ``zart.enqueue``), and any number of schedulers on one engine
    (one per test) add nothing. It costs nothing until a statement fails; the URL and schema
    named come from the failed statement itself."""
    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    # The listeners live on the dialect, which event.contains() does not look at.
    if _explain_error not in sync_engine.dialect.dispatch.handle_error:
        event.listen(sync_engine, "handle_error", _explain_error)
    return engine


def _explain_error(context: ExceptionContext) -> None:
    original = context.original_exception
    message = str(original)
    # The column first: PostgreSQL's 'column "c" of relation "t" does not exist' also reads
    # as a missing table.
    column = _missing_column(message, context.statement)
    found = None if column is not None else _MISSING_TABLE.search(message)
    if found is None and column is None:
        if connection_lost(original):
            context.is_disconnect = True  # also invalidates the rest of the pool
            if context.sqlalchemy_exception is None and isinstance(original, Exception):
                raise OperationalError(
                    context.statement, context.parameters, original
                ) from original
        return
    schema = found["schema"] if found is not None else None
    if schema is None and context.connection is not None:
        translate = context.connection.get_execution_options().get("schema_translate_map")
        schema = (translate or {}).get(None)
    url = mask_url(context.engine.url) if context.engine is not None else context.dialect.name
    if column is not None:
        raise SchemaOutdated(*column, url, schema) from context.sqlalchemy_exception
    assert found is not None
    raise SchemaMissing(found["sqlite"] or found["pg"], url, schema) from (
        context.sqlalchemy_exception
    )


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


async def lock_for_migration(connection: AsyncConnection, key: int, schema: str | None) -> None:
    """Serialize migrations in ``connection``'s transaction: on PostgreSQL an advisory lock
    held until it ends (concurrent upgrades queue up here), then ``schema`` created if
    missing; SQLite's ``BEGIN IMMEDIATE`` already serializes them."""
    if connection.dialect.name != "postgresql":
        return
    await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    if schema is not None:
        await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))


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
# The worker's own connections (driven by zart.repositories.store) and driver errors


def sqlalchemy_error(exc: BaseException) -> SQLAlchemyError | None:
    """The SQLAlchemy error for an error of a driver used directly (asyncpg, sqlite3), or
    ``None`` when ``exc`` is not one.

    :class:`~sqlalchemy.exc.OperationalError` when the connection or the database is not
    usable now (asyncpg: the connection broke or was closed, an internal client error, the
    server refuses connections for now; SQLite: every error, "database is locked" included),
    :class:`~sqlalchemy.exc.DatabaseError` for an error of the statement itself. Whether an
    error is worth retrying is :func:`is_transient`'s call, made on the driver's own error."""
    if isinstance(exc, SQLAlchemyError):
        return exc
    if isinstance(exc, sqlite3.Error):
        return OperationalError(None, None, exc)
    if isinstance(exc, TimeoutError | OSError):
        return OperationalError(None, None, exc)
    try:
        import asyncpg  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return None
    connection_lost = (
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        asyncpg.exceptions.ConnectionFailureError,
        asyncpg.exceptions.CannotConnectNowError,
    )
    if isinstance(exc, connection_lost):
        return OperationalError(None, None, exc)
    if isinstance(exc, asyncpg.PostgresError):
        return DatabaseError(None, None, exc)
    return None


async def detached_connection(engine: AsyncEngine) -> tuple[AsyncConnection, Any]:
    """A driver connection opened the engine's way (its URL, ``connect_args``, SSL and, on
    PostgreSQL, SQLAlchemy's JSON codecs), then taken out of its pool for good: ours until
    closed. Returns the SQLAlchemy connection that owns it and the driver's connection."""
    owner = await engine.connect()
    try:
        raw = await owner.get_raw_connection()
        connection = raw.driver_connection  # before detach(), which drops the reference
        raw.detach()
    except BaseException:
        await owner.close()
        raise
    if connection is None:  # pragma: no cover - only for a pool without a driver
        await owner.close()
        raise OSError("no driver connection")
    return owner, connection


#: Driver connections a worker process keeps for its hot statements, at most.
DRIVER_CONNECTIONS = 8

#: Set on each of them: see :meth:`DriverConnections._open`.
GENERIC_PLANS = "SET plan_cache_mode = force_generic_plan"

#: Seconds a driver connection keeps its plans before they are made again (``DISCARD
#: PLANS`` when it is next lent): a generic plan is made once, from the statistics and the
#: table sizes of that moment, and one made while a table was nearly empty can be ruinous
#: once it is full (the claim-ahead read every step row once per candidate: 6.7 s for 250
#: executions at 10,000 waiting, 16 ms planned anew). So no plan outlives this by much.
REPLAN_EVERY = 5.0

#: Sent to a connection whose plans are older than :data:`REPLAN_EVERY`: its prepared
#: statements stay, each is planned again at its next use.
REPLAN = "DISCARD PLANS"


@dataclass(slots=True, eq=False)
class _Kept:
    """A driver connection kept out of the engine's pool: the SQLAlchemy connection that owns
    it, the driver's connection, and when its plans were last made (monotonic seconds)."""

    owner: AsyncConnection
    connection: Any
    planned_at: float


class DriverConnections:
    """A few asyncpg connections, opened the engine's way and then kept out of its pool, for
    the statements a worker runs all the time (checkpoints, claims, finishes).

    Lending one out costs a list pop; the engine's pool checkout costs ~130 µs of CPU here.
    Errors surface as SQLAlchemy errors (:func:`sqlalchemy_error`). A connection that broke
    (:func:`connection_lost`: closed, cut mid-statement, the server restarting), or whose
    user was cancelled mid-statement, is closed rather than lent again, and so are the idle
    ones: what broke one (a restart, a failover) broke them too, and each would otherwise fail
    one more statement when lent.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        size: int = DRIVER_CONNECTIONS,
        *,
        replan_every: float = REPLAN_EVERY,
    ) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("driver connections are for PostgreSQL (asyncpg)")
        self._engine = engine
        self._slots = asyncio.Semaphore(size)
        self._idle: list[_Kept] = []
        self._closed = False
        self.replan_every = replan_every

    def connection(self) -> _Lent:
        """A connection in autocommit: each statement commits on its own
        (``async with connections.connection() as connection:``)."""
        return _Lent(self)

    async def _lend(self) -> _Kept:
        await self._slots.acquire()
        try:
            if self._closed:
                raise OperationalError(None, None, Exception("the worker's connections are closed"))
            try:
                entry = self._idle.pop() if self._idle else await self._open()
            except Exception as exc:
                raise _translated(exc) from exc
        except BaseException:
            self._slots.release()
            raise
        return entry

    async def _returned(self, entry: _Kept, error: BaseException | None) -> None:
        """``entry`` comes back, after ``error`` if its user failed: kept for the next one
        if it is healthy (a statement's own error leaves it so), else closed, and the idle
        ones with it when it broke (see the class docstring)."""
        try:
            healthy = error is None or (isinstance(error, Exception) and not connection_lost(error))
            if error is not None and not healthy and isinstance(error, Exception):
                await self._discard_idle()
            if healthy and not self._closed and not entry.connection.is_closed():
                self._idle.append(entry)
            else:
                await _discard(entry)
        finally:
            self._slots.release()

    async def _open(self) -> _Kept:
        entry = _Kept(*await detached_connection(self._engine), planned_at=time.monotonic())
        try:
            # Generic plans for Zart's hot statements: planned once per connection instead of
            # at every call. PostgreSQL keeps re-planning them (custom plans) when a generic
            # plan's estimate looks worse, and on a table of a million finished executions
            # that planning (statistics, index end probes) was most of a claim's server time.
            # Made again every REPLAN_EVERY seconds, so that none is kept from a time when the
            # tables were much smaller.
            await entry.connection.execute(GENERIC_PLANS)
        except BaseException:
            await _discard(entry)
            raise
        return entry

    async def _discard_idle(self) -> None:
        idle, self._idle = self._idle, []
        for entry in idle:
            await _discard(entry)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        """A connection inside a transaction, committed when the block ends without error."""
        async with self.connection() as connection, connection.transaction():
            yield connection

    async def close(self) -> None:
        self._closed = True
        await self._discard_idle()


class _Lent:
    """:meth:`DriverConnections.connection`'s context (a class, not a generator: every
    statement of a worker enters one)."""

    __slots__ = ("_entry", "_pool")

    def __init__(self, pool: DriverConnections) -> None:
        self._pool = pool

    async def __aenter__(self) -> Any:
        entry = self._entry = await self._pool._lend()
        try:
            if time.monotonic() - entry.planned_at >= self._pool.replan_every:
                await entry.connection.execute(REPLAN)
                entry.planned_at = time.monotonic()
        except BaseException as exc:
            await self._pool._returned(entry, exc)
            _raise_translated(exc)
            raise
        return entry.connection

    async def __aexit__(self, kind: Any, error: BaseException | None, traceback: Any) -> bool:
        await self._pool._returned(self._entry, error)
        if error is not None:
            _raise_translated(error)
        return False


def _raise_translated(error: BaseException) -> None:
    """Raise ``error`` as its SQLAlchemy error, when it is a driver's; else return (it keeps
    its own cause: an operation's error wraps the driver's)."""
    if isinstance(error, Exception):
        translated = _translated(error)
        if translated is not error:
            raise translated from error


def _translated(exc: Exception) -> Exception:
    found = sqlalchemy_error(exc)
    return exc if found is None else found


async def _discard(entry: _Kept) -> None:
    owner, connection = entry.owner, entry.connection
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
    Errors surface as SQLAlchemy errors (:func:`sqlalchemy_error`)."""

    def __init__(self, engine: AsyncEngine) -> None:
        if engine.dialect.name != "sqlite":
            raise ValueError("the SQLite writer is for SQLite")
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

    async def transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in a write transaction (committed when it returns, rolled back when it
        raises), in the writer's thread; its result."""

        def run() -> T:
            connection = self._connected()
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = work(connection)
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

    async def read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` outside a transaction (each statement on its own), in the thread."""
        return await self._in_thread(lambda: work(self._connected()))

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
