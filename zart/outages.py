"""Database outages: which errors are one, how the loops that meet them back off, and how a
worker says so.

:func:`is_transient` is the one classification of database errors, made on the driver's own
error wherever SQLAlchemy or Zart wrapped it: "not now" (the connection dropped, the server
restarts or recovers, a lock or a race lost, SQLite's "database is locked") or "not this"
(a value the database refused, a missing column), which no retry cures. Every worker loop
retries the first kind with :func:`retry_delay`'s back-off, a run hands its execution back
on it, and the connections it shows broken are dropped (:func:`connection_lost`). One
:class:`Outage` per worker turns the failures of all its loops into one warning per outage.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from enum import Enum

from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from zart.logs import log

__all__ = ["Outage", "connection_lost", "is_transient", "retry_delay"]

#: SQLSTATEs (or their two-character classes) of errors that say "not now" rather than "not
#: this": the connection went (08), the server is shutting down, crashed or starting up
#: (57P01-57P03), it is short of connections, memory or disk (53), the transaction lost a
#: race (40001 serialization failure, 40P01 deadlock, 55P03 lock not available), or a
#: failover left us on a standby for a moment (25006 read-only transaction).
_RETRY_SQLSTATES = frozenset({"40001", "40P01", "55P03", "25006"})
_RECONNECT_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})
_TRANSIENT_CLASSES = frozenset({"08", "53"})
#: SQLite primary result codes that pass: busy or locked past the busy timeout, an I/O error,
#: the file cannot be opened for now, a locking protocol error, a full disk.
_SQLITE_TRANSIENT = frozenset({5, 6, 10, 13, 14, 15})


class _Verdict(Enum):
    PERMANENT = "permanent"  # the statement or its values: trying again fails again
    RETRY = "retry"  # try again; the connection is fine
    RECONNECT = "reconnect"  # try again on another connection: this one is gone


def _driver_verdict(exc: BaseException) -> _Verdict | None:
    """What the driver's own error says, or ``None`` when ``exc`` says nothing definite."""
    if isinstance(exc, OSError):  # refused, reset, timed out: the link
        return _Verdict.RECONNECT
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None:
            return _Verdict.PERMANENT  # raised by the sqlite3 module itself (a closed handle)
        return _Verdict.RETRY if (code & 0xFF) in _SQLITE_TRANSIENT else _Verdict.PERMANENT
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and len(sqlstate) == 5:
        if sqlstate[:2] == "08" or sqlstate in _RECONNECT_SQLSTATES:
            return _Verdict.RECONNECT
        if sqlstate[:2] in _TRANSIENT_CLASSES or sqlstate in _RETRY_SQLSTATES:
            return _Verdict.RETRY
        return _Verdict.PERMANENT
    try:
        import asyncpg  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return None
    if isinstance(
        exc,
        asyncpg.exceptions.ClientConfigurationError
        | asyncpg.exceptions.UnsupportedClientFeatureError,
    ):
        return _Verdict.PERMANENT
    # A closed connection, "another operation is in progress", and the protocol's internal
    # errors a connection cut mid-statement leaves behind ("cannot switch to state 12",
    # MagicStack/asyncpg#1069): the connection is not usable, the database may well be.
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.InternalClientError):
        return _Verdict.RECONNECT
    return None


def _verdict(exc: BaseException) -> _Verdict:
    # The driver's error decides, wherever it sits: SQLAlchemy's wrapper keeps it in
    # ``orig`` (its asyncpg adapter once more in ``__cause__``), our own errors in __cause__.
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return _Verdict.RECONNECT
        found = _driver_verdict(current)
        if found is not None:
            return found
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    # Nothing from a driver: SQLAlchemy's own errors about connections (a pool timeout, a
    # connection it found disconnected) pass; any other error is the statement's.
    if isinstance(exc, DisconnectionError | OperationalError | InterfaceError):
        return _Verdict.RECONNECT
    if isinstance(exc, PoolTimeout):
        return _Verdict.RETRY
    return _Verdict.PERMANENT


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc``, met running a statement, says the database is unavailable for now
    (the connection dropped, the server restarts or recovers, a lock or a race lost, SQLite's
    "database is locked"): then trying again later will do. The one classification of
    database errors: every worker loop retries these with a back-off, a run hands its
    execution back on them, and anything else is the statement's own error (a value the
    database refused, a missing column) that no retry will cure."""
    return _verdict(exc) is not _Verdict.PERMANENT


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection it came from is gone (not worth lending again)."""
    return _verdict(exc) is _Verdict.RECONNECT


def retry_delay(failures: int) -> float:
    """Seconds to wait after ``failures`` failures in a row of one loop: doubling from
    :data:`FIRST_RETRY_DELAY` to at most :data:`LONGEST_RETRY_DELAY`, jittered (so workers
    that failed together do not retry together), so a loop is back within a second of the
    database."""
    ceiling: float = min(FIRST_RETRY_DELAY * 2.0 ** max(failures - 1, 0), LONGEST_RETRY_DELAY)
    return ceiling * random.uniform(0.5, 1.0)


#: Back-off of a loop that failed for a transient error, in seconds.
FIRST_RETRY_DELAY = 0.05
LONGEST_RETRY_DELAY = 1.0

#: A failure within this many seconds of the end of an outage continues it (not a new one):
#: while a server comes back, some connections still fail after others succeed.
OUTAGE_MERGE_SECONDS = 5.0


class Outage:
    """Whether the database is reachable, as one worker's loops and runs find it: the first
    failure of an outage logs ``database_unavailable`` once (a warning), the failures after it
    only at DEBUG, and the first success after it ``database_available`` with how long it
    lasted. Each loop (``key``) keeps its own back-off (:func:`retry_delay`)."""

    def __init__(self, name: str = "worker") -> None:
        self._name = name
        self._failures: dict[str, int] = {}
        self._since: float | None = None
        self._ended: float | None = None
        self._began: float | None = None  # the first failure of the outage, merges included
        self.count = 0  # outages seen (a merged failure continues one)

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, key: str, exc: BaseException, *, action: str) -> float:
        """Record a transient failure of ``key`` (its own ``action`` logged at DEBUG); the
        seconds it should wait before trying again."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        now = time.monotonic()
        if self._since is None:
            self._since = now
            merged = self._ended is not None and now - self._ended < OUTAGE_MERGE_SECONDS
            if not merged:
                self._began = now
                self.count += 1
                log(
                    "database_unavailable",
                    f"database unavailable ({key}: {exc}); the {self._name}"
                    " retries until it is back",
                    level=logging.WARNING,
                    loop=key,
                )
        log(action, f"{key} failed: {exc}", level=logging.DEBUG)
        return retry_delay(failures)

    def succeeded(self, key: str) -> None:
        """``key`` reached the database: its back-off starts over, and an outage ends."""
        if self._failures:
            self._failures.pop(key, None)
        if self._since is None:
            return
        now = time.monotonic()
        began = self._began if self._began is not None else self._since
        self._since = None
        self._ended = now
        log(
            "database_available",
            f"database available again after {now - began:.1f}s",
            level=logging.INFO,
            loop=key,
            seconds=round(now - began, 3),
        )

    def forget(self, key: str) -> None:
        """``key`` stopped trying (a run handed back its execution, or gave up)."""
        self._failures.pop(key, None)
