"""Transactional steps: ``@zart.step(name, transactional=True)`` and ``zart.session()``.

Each attempt of a transactional step runs in a transaction of its own on the scheduler's
engine (the application's, when it is shared). Inside, ``zart.session()`` is an
``AsyncSession`` on that transaction; when the body returns, its pending changes are flushed,
the step's outcome is written on the same connection, fenced by the lease token, and the
transaction commits: the step's writes and its checkpoint land together or not at all. So the
step runs exactly once: a worker killed mid-step leaves nothing behind (the attempt runs again
after the takeover), and a worker that lost its lease cannot commit (the fence refuses the
checkpoint and everything rolls back). A failed, timed-out or cancelled attempt rolls back;
its failure is recorded afterwards in a transaction of its own, so the attempt history stays.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar, Token
from typing import Any, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, AsyncTransaction

from zart.database import schema_of
from zart.errors import ConfigurationError, NoStepTransaction

T = TypeVar("T")

current_session: ContextVar[AsyncSession | None] = ContextVar("zart_session", default=None)


def session() -> AsyncSession:
    """The ``AsyncSession`` of the transactional step running here.

    Its transaction also records the step's outcome: do not commit or roll it back; return to
    commit, raise to roll back. Raises :class:`~zart.NoStepTransaction` outside a step declared
    with ``@zart.step(..., transactional=True)`` (and outside :func:`use_session`).
    """
    found = current_session.get()
    if found is None:
        raise NoStepTransaction(
            "zart.session() is only available inside a step declared with"
            " @zart.step(..., transactional=True), or in a zart.use_session(...) block"
        )
    return found


@contextmanager
def use_session(given: AsyncSession) -> Iterator[AsyncSession]:
    """Make ``zart.session()`` return ``given`` in this block.

    For calling a transactional step outside an execution (unit tests, scripts): there it runs
    as a plain function, with no engine of Zart's to open a transaction on, so the caller
    provides the session and owns its transaction. Inside an execution the step's own session
    takes precedence.
    """
    if not isinstance(given, AsyncSession):
        raise ConfigurationError(f"use_session() takes an AsyncSession, not {type(given).__name__}")
    token = current_session.set(given)
    try:
        yield given
    finally:
        current_session.reset(token)


class StepTransaction:
    """One attempt's transaction: opened before the body, committed with the checkpoint."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._schema = schema_of(engine)
        self._connection: AsyncConnection | None = None
        self._transaction: AsyncTransaction | None = None
        self.session: AsyncSession | None = None

    async def begin(self) -> None:
        """Open the transaction (``BEGIN IMMEDIATE`` on SQLite) and the step's session."""
        connection = await self._engine.connect()
        try:
            self._transaction = await connection.begin()
        except BaseException:
            await connection.close()
            raise
        self._connection = connection
        # The application's statements run with the connection as the application configured
        # it: Zart's schema translation would move its tables into Zart's schema.
        self._sync().execution_options(schema_translate_map=None)
        # Joined to our transaction: session.commit() does not end it, session.close() does
        # not touch it.
        self.session = AsyncSession(bind=connection, expire_on_commit=False)

    def activate(self) -> Token[AsyncSession | None]:
        """Make ``zart.session()`` return this attempt's session (reset with the token)."""
        return current_session.set(self.session)

    async def end_body(self) -> None:
        """The body returned: send its pending changes, so a constraint they break fails the
        attempt, and check that the body left the transaction open."""
        if self.session is not None:
            await self.session.flush()
        if self._transaction is None or not self._transaction.is_active:
            raise NoStepTransaction(
                "the step's transaction was ended inside the step; a transactional step must"
                " not commit or roll back zart.session() itself (return or raise instead)"
            )

    async def commit_with(self, write: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``write`` (the fenced checkpoint) in the transaction, in Zart's schema, and
        commit; on any error roll everything back and re-raise."""
        connection = self._open()
        try:
            if self.session is not None:
                await self.session.close()  # detaches the objects; leaves our transaction be
            self._sync().execution_options(
                schema_translate_map=None if self._schema is None else {None: self._schema}
            )
            written = await write(connection)
            await connection.commit()
        except BaseException:
            await self.rollback()
            raise
        await self._close()
        return written

    async def rollback(self) -> None:
        """Roll the attempt's writes back and give the connection back to the pool."""
        if self._connection is None:
            return
        try:
            if self.session is not None:
                await self.session.close()
            await self._connection.rollback()
        finally:
            await self._close()

    async def _close(self) -> None:
        connection, self._connection, self.session = self._connection, None, None
        if connection is not None:
            # Returned to the pool, which also rolls back whatever is still open.
            await connection.close()

    def _open(self) -> AsyncConnection:
        if self._connection is None:
            raise RuntimeError("the step transaction is not open")
        return self._connection

    def _sync(self) -> Connection:
        sync = self._open().sync_connection
        if sync is None:  # pragma: no cover - an open AsyncConnection has one
            raise RuntimeError("the step transaction's connection is not open")
        return sync


async def discard(transaction: StepTransaction | None) -> None:
    """Roll back a failed attempt's writes (nothing for a plain step). A rollback that fails
    changes nothing: the connection goes back to the pool, which rolls back or drops it."""
    if transaction is not None:
        with suppress(SQLAlchemyError, OSError):
            await transaction.rollback()


def check_transactional(fn: Callable[..., Any], name: str) -> None:
    """A transactional step must be an ``async def``: its session is an ``AsyncSession``,
    bound to the event loop, which a sync body (run in a thread) could not use."""
    if not inspect.iscoroutinefunction(fn):
        raise ConfigurationError(
            f"@zart.step({name!r}, transactional=True) needs an async function: zart.session()"
            " is an AsyncSession (a sync step runs in a thread, where it cannot be used)"
        )
