"""Operations, and the connections that run them.

A repository **operation** is a plain generator function: its first parameter is the
:class:`Backend` it runs on (what the database can do), it yields ``(statement, parameters)``
and receives the rows, and it returns a frozen record::

    def finish_execution(backend: Backend, lease: Lease, ...) -> Operation[ExecutionRecord]:
        rows = yield FINISH, {...}
        if not rows:
            raise LeaseLost(lease.execution_id)
        return _finished(...)

It does no I/O of its own (the "sans-I/O" style of h11), so **one body** runs on every
connection; operations compose with ``yield from``. An **executor** runs one (``await
executor.run(operation, *args)``), one statement at a time:

- :class:`ConnectionExecutor`: a caller's SQLAlchemy ``AsyncConnection`` (the control plane,
  ``start(session=...)``, a transactional step's checkpoint), inside whatever transaction the
  caller holds: it never begins or commits. The statement goes to the driver compiled, as on
  the worker's connections (``exec_driver_sql``: the connection's events see it), in the
  schema the connection translates to;
- :class:`SyncConnectionExecutor`: a synchronous ``Connection`` (``zart.enqueue``);
- the worker's own connections (:mod:`zart.repositories.store`): asyncpg connections, or
  SQLite's writer connection, where the operation decides the transaction: it is declared
  :func:`autocommit` (each statement it sends is a complete write, or a read that needs no
  snapshot shared with it: on PostgreSQL no ``BEGIN``/``COMMIT``), :func:`reads` (no write
  lock on SQLite), or by default one transaction. On SQLite a whole operation is one hop to
  the writer's thread, ``BEGIN IMMEDIATE`` to ``COMMIT``.

A database error while a statement runs is thrown into the operation (it may clean up or
re-raise): a SQLAlchemy error whatever the connection (:func:`zart.database.sqlalchemy_error`).
"""

from __future__ import annotations

import contextlib
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from enum import Enum
from typing import Any, Concatenate, ParamSpec, TypeAlias, TypeVar

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from zart.database import in_schema
from zart.errors import ConfigurationError
from zart.repositories.statements import RawStatement, Statement

T = TypeVar("T")
P = ParamSpec("P")
F = TypeVar("F", bound=Callable[..., Any])

#: What an operation yields: a statement and its parameters.
Request: TypeAlias = tuple[Statement, Mapping[str, Any]]
#: What it gets back: the statement's rows (mappings by column name; ``[]`` when none).
Rows: TypeAlias = Sequence[Mapping[str, Any]]
#: A running operation whose result is a ``T``.
Operation: TypeAlias = Generator[Request, Rows, T]
#: An operation function: ``operation(backend, *args, **kwargs)`` starts it.
OperationFunction: TypeAlias = Callable[Concatenate["Backend", P], Operation[T]]


@dataclass(frozen=True, slots=True)
class Backend:
    """What the database an operation runs on can do: the few capabilities statement
    variants and operation bodies choose by (never its name, outside statement builders)."""

    #: The SQLAlchemy dialect name: what :meth:`Statement.construct` is built for.
    dialect: str
    #: ``WITH ... AS (INSERT/UPDATE ... RETURNING)``: a write of several tables is one
    #: statement (PostgreSQL). Otherwise the same writes go one statement each, in the
    #: operation's transaction.
    modifying_ctes: bool
    #: ``NOTIFY``, delivered at commit (PostgreSQL); otherwise workers poll.
    notifies: bool
    #: ``unnest`` of arrays: one statement writes many items (a group of checkpoints, of
    #: finishes), each fenced by its own lease (PostgreSQL). Otherwise a group is one item
    #: after the other in one transaction.
    group_statements: bool
    #: ``FOR UPDATE SKIP LOCKED``: claimers pass each other's rows by, so a worker can claim
    #: a crowd ahead of its due time and hold it without holding others up (PostgreSQL).
    #: SQLite's writers are serialized anyway, and its workers do not claim ahead.
    skips_locked: bool
    #: A savepoint keeps a failed statement from poisoning the caller's transaction
    #: (PostgreSQL). SQLite undoes a failed statement by itself.
    savepoints: bool


POSTGRESQL = Backend(
    "postgresql",
    modifying_ctes=True,
    notifies=True,
    group_statements=True,
    skips_locked=True,
    savepoints=True,
)
SQLITE = Backend(
    "sqlite",
    modifying_ctes=False,
    notifies=False,
    group_statements=False,
    skips_locked=False,
    savepoints=False,
)


def backend_of(dialect: str) -> Backend:
    """The backend of a SQLAlchemy dialect name (the engines only make these two)."""
    if dialect == "postgresql":
        return POSTGRESQL
    if dialect == "sqlite":
        return SQLITE
    raise ConfigurationError(f"unsupported database {dialect!r}: Zart runs on PostgreSQL or SQLite")


class Mode(Enum):
    """How the worker's connections run an operation (see the module docstring)."""

    TRANSACTION = "transaction"
    AUTOCOMMIT = "autocommit"
    READ = "read"


_MODES: dict[Callable[..., Any], Mode] = {}


def autocommit(operation: F) -> F:
    """Declare that each statement ``operation`` sends stands on its own (no transaction on
    PostgreSQL's driver connections)."""
    _MODES[operation] = Mode.AUTOCOMMIT
    return operation


def reads(operation: F) -> F:
    """Declare that ``operation`` only reads (no transaction; no write lock on SQLite)."""
    _MODES[operation] = Mode.READ
    return operation


def mode_of(operation: Callable[..., Any]) -> Mode:
    return _MODES.get(operation, Mode.TRANSACTION)


async def drive(
    operation: Operation[T], execute: Callable[[Statement, Mapping[str, Any]], Awaitable[Rows]]
) -> T:
    """Run ``operation``, each statement through ``execute``; its result."""
    try:
        request = operation.send(None)  # type: ignore[arg-type]
        while True:
            try:
                rows = await execute(*request)
            except Exception as error:
                request = operation.throw(error)
            else:
                request = operation.send(rows)
    except StopIteration as finished:
        result: T = finished.value
        return result
    finally:
        operation.close()


def drive_sync(
    operation: Operation[T], execute: Callable[[Statement, Mapping[str, Any]], Rows]
) -> T:
    """:func:`drive` where ``execute`` is synchronous (sqlite3 in its thread; a sync
    SQLAlchemy connection)."""
    try:
        request = operation.send(None)  # type: ignore[arg-type]
        while True:
            try:
                rows = execute(*request)
            except Exception as error:
                request = operation.throw(error)
            else:
                request = operation.send(rows)
    except StopIteration as finished:
        result: T = finished.value
        return result
    finally:
        operation.close()


class Compiled:
    """Statements compiled once for one dialect and schema."""

    __slots__ = ("_cache", "_name", "_schema_map", "dialect")

    def __init__(self, dialect: Dialect, schema_map: Mapping[Any, Any] | None) -> None:
        self.dialect = dialect
        self._name = dialect.name
        self._schema_map = schema_map
        self._cache: dict[Statement, RawStatement] = {}

    def __call__(self, statement: Statement) -> RawStatement:
        found = self._cache.get(statement)
        if found is None:
            construct = statement.construct(self._name)
            found = RawStatement(construct, self.dialect, self._schema_map)
            if statement.cached:
                self._cache[statement] = found
        return found


_compiled: dict[tuple[int, Any], Compiled] = {}


def compiled_for(dialect: Dialect, schema_map: Mapping[Any, Any] | None) -> Compiled:
    """The statements compiled for ``dialect`` and ``schema_map`` (one cache for each pair:
    every connection of an engine shares its dialect)."""
    key = (id(dialect), None if not schema_map else tuple(sorted(schema_map.items(), key=repr)))
    found = _compiled.get(key)
    if found is None or found.dialect is not dialect:
        found = _compiled[key] = Compiled(dialect, schema_map)
    return found


class ConnectionExecutor:
    """Runs operations on a caller's ``AsyncConnection``, in its transaction (never ended
    here); its schema translation, events and compiled cache apply."""

    __slots__ = ("backend", "connection")

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection
        self.backend = backend_of(connection.dialect.name)

    async def run(
        self, operation: OperationFunction[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return await drive(operation(self.backend, *args, **kwargs), self._execute)

    async def _execute(self, statement: Statement, params: Mapping[str, Any]) -> Rows:
        sync = self.connection.sync_connection
        assert sync is not None  # an open AsyncConnection has one
        raw = compiled_for(sync.dialect, sync.get_execution_options().get("schema_translate_map"))(
            statement
        )
        result = await self.connection.exec_driver_sql(raw.sql, raw.parameters(params))
        return raw.rows(result.all()) if result.returns_rows else []


class SyncConnectionExecutor:
    """:class:`ConnectionExecutor` for a synchronous ``Connection`` (``zart.enqueue``)."""

    __slots__ = ("backend", "connection")

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.backend = backend_of(connection.dialect.name)

    def run(self, operation: OperationFunction[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        return drive_sync(operation(self.backend, *args, **kwargs), self._execute)

    def _execute(self, statement: Statement, params: Mapping[str, Any]) -> Rows:
        connection = self.connection
        raw = compiled_for(
            connection.dialect, connection.get_execution_options().get("schema_translate_map")
        )(statement)
        result = connection.exec_driver_sql(raw.sql, raw.parameters(params))
        return raw.rows(result.all()) if result.returns_rows else []


@contextlib.asynccontextmanager
async def caller_transaction(
    session: AsyncSession | AsyncConnection, schema: str | None
) -> AsyncIterator[ConnectionExecutor]:
    """Zart's statements in the caller's transaction (``session=``), never committed here:
    Zart's tables in ``schema`` for our statements only, and, where a savepoint isolates a
    failed statement (PostgreSQL), under one: an error rolls back what we wrote and nothing
    else, and the caller's transaction stays usable. (SQLite undoes a failed statement by
    itself, and a savepoint there would commit the caller's work early with drivers that
    begin transactions lazily.)"""
    if isinstance(session, AsyncSession):
        connection = await session.connection()
    elif isinstance(session, AsyncConnection):
        connection = session
    else:
        raise ConfigurationError(
            f"session= takes an AsyncSession or AsyncConnection, not {type(session).__name__}"
        )
    if connection.sync_connection is None:
        raise ConfigurationError("session= got a connection that is not open")
    executor = ConnectionExecutor(connection)
    with in_schema(connection.sync_connection, schema):
        if executor.backend.savepoints:
            async with connection.begin_nested():
                yield executor
        else:
            yield executor


@contextlib.contextmanager
def caller_transaction_sync(
    connection: Connection, schema: str | None
) -> Iterator[SyncConnectionExecutor]:
    """:func:`caller_transaction` for a synchronous ``Connection``."""
    executor = SyncConnectionExecutor(connection)
    with in_schema(connection, schema):
        if executor.backend.savepoints:
            with connection.begin_nested():
                yield executor
        else:
            yield executor


def sync_connection_of(session: Session | Connection) -> Connection:
    """The ``Connection`` of a caller's synchronous ``Session`` or ``Connection``."""
    if isinstance(session, Session):
        return session.connection()
    if isinstance(session, Connection):
        return session
    raise ConfigurationError(
        f"enqueue() takes a Session or Connection, not {type(session).__name__}"
        " (async code: use DurableScheduler.start(..., session=...))"
    )
