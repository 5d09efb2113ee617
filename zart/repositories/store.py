"""The store: where Zart's operations run for one engine, chosen once, at start-up.

Built for the engine (:meth:`Store.for_engine`), it knows the :class:`Backend` and gives the
runtime, the worker and the scheduler what they need, so that nothing above
:mod:`zart.repositories` asks which database it is on:

- :meth:`Store.run`: an operation on the worker's own connections, open while a worker runs
  (:meth:`open` / :meth:`close`, counted): up to
  :data:`~zart.database.DRIVER_CONNECTIONS` asyncpg connections on PostgreSQL, SQLite's
  writer connection and its thread on SQLite. The operation's mode (:mod:`.executors`)
  decides the transaction; compiled statements are cached here, per statement.
- :meth:`transaction`, :meth:`reading`, :meth:`within`, :meth:`on`: an executor on the
  engine (SQLAlchemy), for the control plane and the caller's own transactions.
- :meth:`listen`: wake-ups pushed by the database (PostgreSQL's LISTEN), where
  :attr:`Backend.notifies`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from zart.database import (
    DriverConnections,
    SQLiteWriter,
    detached_connection,
    read_only,
    schema_of,
    sqlalchemy_error,
)
from zart.repositories.executors import (
    Backend,
    ConnectionExecutor,
    Mode,
    OperationFunction,
    Rows,
    backend_of,
    caller_transaction,
    compiled_for,
    drive,
    drive_sync,
    mode_of,
)
from zart.repositories.statements import Statement

T = TypeVar("T")
P = ParamSpec("P")


class _DriverExecutor:
    """PostgreSQL: operations on asyncpg connections; one statement is one round trip."""

    def __init__(self, engine: AsyncEngine, backend: Backend) -> None:
        self.backend = backend
        self.connections = DriverConnections(engine)
        self._compiled = compiled_for(
            engine.dialect, engine.get_execution_options().get("schema_translate_map")
        )

    async def run(
        self, operation: OperationFunction[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        running = operation(self.backend, *args, **kwargs)
        compiled = self._compiled
        lend: contextlib.AbstractAsyncContextManager[Any] = (
            self.connections.transaction()
            if mode_of(operation) is Mode.TRANSACTION
            else self.connections.connection()
        )
        async with lend as connection:

            async def execute(statement: Statement, params: Mapping[str, Any]) -> Rows:
                try:
                    return await compiled(statement).fetch(connection, params)
                except Exception as exc:
                    raise (sqlalchemy_error(exc) or exc) from exc

            return await drive(running, execute)

    async def close(self) -> None:
        await self.connections.close()


class _WriterExecutor:
    """SQLite: a whole operation in one hop to the writer's thread, in ``BEGIN IMMEDIATE``
    (reads: outside a transaction)."""

    def __init__(self, engine: AsyncEngine, backend: Backend) -> None:
        self.backend = backend
        self.writer = SQLiteWriter(engine)
        self._compiled = compiled_for(engine.dialect, None)

    async def run(
        self, operation: OperationFunction[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        running = operation(self.backend, *args, **kwargs)
        compiled = self._compiled

        def work(connection: sqlite3.Connection) -> T:
            def execute(statement: Statement, params: Mapping[str, Any]) -> Rows:
                try:
                    return compiled(statement).run(connection, params)
                except sqlite3.Error as exc:
                    raise (sqlalchemy_error(exc) or exc) from exc

            return drive_sync(running, execute)

        if mode_of(operation) is Mode.READ:
            return await self.writer.read(work)
        return await self.writer.transaction(work)

    async def close(self) -> None:
        await self.writer.close()


class Store:
    """Zart's operations on one engine (see the module docstring)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.backend = backend_of(engine.dialect.name)
        self._reads = read_only(engine)
        self._schema = schema_of(engine)
        self._own: _DriverExecutor | _WriterExecutor | None = None
        self._users = 0

    @classmethod
    def for_engine(cls, engine: AsyncEngine) -> Store:
        return cls(engine)

    # -- the worker's connections -------------------------------------------------------

    def open(self) -> None:
        """A worker starts: keep the worker's connections until the last one stops."""
        self._users += 1
        if self._own is None:
            if self.backend.dialect == "postgresql":
                self._own = _DriverExecutor(self.engine, self.backend)
            else:
                self._own = _WriterExecutor(self.engine, self.backend)

    async def close(self) -> None:
        """A worker stopped (see :meth:`open`)."""
        if self._users == 0:
            return
        self._users -= 1
        if self._users > 0:
            return
        own, self._own = self._own, None
        if own is not None:
            await own.close()

    @property
    def is_open(self) -> bool:
        return self._own is not None

    async def run(
        self, operation: OperationFunction[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``operation(backend, *args, **kwargs)`` on the worker's connections, in the
        transaction its mode asks for; its result."""
        own = self._own
        if own is None:
            raise RuntimeError(
                "an operation ran on the worker's connections while none is open"
                " (Store.open: a worker opens them when it starts)"
            )
        return await own.run(operation, *args, **kwargs)

    # -- the engine's connections -------------------------------------------------------

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[ConnectionExecutor]:
        """A transaction of the engine's (committed when the block ends without error)."""
        async with self.engine.begin() as connection:
            yield ConnectionExecutor(connection)

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[ConnectionExecutor]:
        """A connection that only reads (:func:`zart.database.read_only`)."""
        async with self._reads.connect() as connection:
            yield ConnectionExecutor(connection)

    @contextlib.asynccontextmanager
    async def within(
        self, session: AsyncSession | AsyncConnection | None
    ) -> AsyncIterator[ConnectionExecutor]:
        """The caller's transaction when ``session`` is given (never committed here, see
        :func:`.executors.caller_transaction`), else one of our own."""
        if session is None:
            async with self.transaction() as executor:
                yield executor
            return
        async with caller_transaction(session, self._schema) as executor:
            yield executor

    @staticmethod
    def on(connection: AsyncConnection) -> ConnectionExecutor:
        """An executor on an open connection, in its transaction (a transactional step's)."""
        return ConnectionExecutor(connection)

    # -- wake-ups -----------------------------------------------------------------------

    async def listen(
        self,
        channel: str,
        on_payload: Callable[[str], None],
        *,
        until: asyncio.Event,
        probe_every: float,
        probe_timeout: float,
        on_listening: Callable[[int], None] = lambda _pid: None,
    ) -> None:
        """Deliver every payload NOTIFYed on ``channel`` to ``on_payload`` until ``until``
        is set, on a connection of its own (:attr:`Backend.notifies` only). Probes the link
        every ``probe_every`` seconds; raises :class:`OSError` (or a driver error) when the
        connection is lost, after ``on_listening(server_pid)`` once it listened."""
        if not self.backend.notifies:
            raise RuntimeError(f"{self.backend.dialect} has no LISTEN: its workers poll")
        try:
            await self._listen(channel, on_payload, until, probe_every, probe_timeout, on_listening)
        except Exception as exc:
            translated = sqlalchemy_error(exc)
            if translated is None or translated is exc:
                raise
            raise translated from exc

    async def _listen(
        self,
        channel: str,
        on_payload: Callable[[str], None],
        until: asyncio.Event,
        probe_every: float,
        probe_timeout: float,
        on_listening: Callable[[int], None],
    ) -> None:
        owner, connection = await detached_connection(self.engine)
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _conn: lost.set())
            await connection.add_listener(
                channel, lambda _conn, _pid, _channel, payload: on_payload(payload)
            )
            on_listening(connection.get_server_pid())
            while not lost.is_set() and not until.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(probe_every):
                        await lost.wait()
                if not lost.is_set():  # notices a silently dropped link
                    try:
                        async with asyncio.timeout(probe_timeout):
                            await connection.execute("SELECT 1")
                    except TimeoutError:
                        raise OSError("the listening connection stopped answering") from None
            if lost.is_set():
                raise OSError("the listening connection was closed")
        finally:
            with contextlib.suppress(Exception):
                await owner.close()
