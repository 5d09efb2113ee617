"""What counts as a database outage (zart.outages.is_transient), decided on the driver's own
error wherever it is wrapped, and how a worker reports one: one warning per outage."""

from __future__ import annotations

import logging
import sqlite3

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from zart.database import sqlalchemy_error
from zart.errors import LeaseLost
from zart.outages import (
    LONGEST_RETRY_DELAY,
    Outage,
    connection_lost,
    is_transient,
    retry_delay,
)

LOST = [
    asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
    asyncpg.InterfaceError("connection is closed"),
    asyncpg.exceptions.ConnectionDoesNotExistError(
        "connection was closed in the middle of operation"
    ),
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.exceptions.CrashShutdownError("terminating connection because of crash of another"),
    asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    ConnectionRefusedError(111, "Connect call failed"),
    ConnectionResetError(104, "Connection reset by peer"),
    TimeoutError(),
]
RETRY = [
    asyncpg.exceptions.SerializationError("could not serialize access"),
    asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
    asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.exceptions.LockNotAvailableError("could not obtain lock"),
]
PERMANENT = [
    asyncpg.exceptions.StringDataRightTruncationError("value too long for type varchar(255)"),
    asyncpg.exceptions.UniqueViolationError("duplicate key value"),
    asyncpg.exceptions.UndefinedColumnError('column "x" does not exist'),
    asyncpg.exceptions.DataError("invalid input for query argument $1"),
    asyncpg.exceptions.ClientConfigurationError("bad option"),
    LeaseLost("e1"),
    ValueError("a bug"),
]


@pytest.mark.parametrize("error", LOST, ids=repr)
def test_a_lost_connection_is_transient_raw_and_wrapped(error: Exception) -> None:
    wrapped = sqlalchemy_error(error)
    assert wrapped is not None
    for seen in (error, wrapped, _caused_by(error)):
        assert is_transient(seen)
        assert connection_lost(seen)


@pytest.mark.parametrize("error", RETRY, ids=repr)
def test_a_lost_race_is_transient_and_keeps_its_connection(error: Exception) -> None:
    assert is_transient(error)
    assert is_transient(sqlalchemy_error(error) or error)
    assert not connection_lost(error)


@pytest.mark.parametrize("error", PERMANENT, ids=repr)
def test_an_error_of_the_statement_is_not_transient(error: Exception) -> None:
    assert not is_transient(error)
    assert not is_transient(sqlalchemy_error(error) or error)
    assert not is_transient(_caused_by(error))


def test_sqlalchemy_errors_are_judged_by_the_driver_error_they_carry() -> None:
    # SQLAlchemy's classes say little: SQLite's syntax errors are OperationalErrors, and
    # PostgreSQL's shutdown arrives as a generic DBAPIError.
    locked = sqlite3.OperationalError("database is locked")
    locked.sqlite_errorcode = 5  # SQLITE_BUSY, as sqlite3 sets it
    syntax = sqlite3.OperationalError('near "SELEC": syntax error')
    syntax.sqlite_errorcode = 1  # SQLITE_ERROR
    assert is_transient(OperationalError("BEGIN IMMEDIATE", {}, locked))
    assert not is_transient(OperationalError("SELEC 1", {}, syntax))
    assert not is_transient(sqlalchemy_error(sqlite3.IntegrityError("UNIQUE constraint failed")))
    for error in (DataError, IntegrityError, ProgrammingError):
        assert not is_transient(error("SELECT 1", {}, ValueError("no")))
    assert is_transient(PoolTimeout("QueuePool limit reached"))
    assert is_transient(OperationalError(None, None, Exception("server closed the connection")))


def test_the_back_off_doubles_to_a_second() -> None:
    delays = [retry_delay(n) for n in range(1, 12)]
    assert all(0 < d <= LONGEST_RETRY_DELAY for d in delays)
    assert delays[0] <= 0.05
    assert delays[-1] >= LONGEST_RETRY_DELAY / 2


def test_an_outage_is_one_warning_however_many_loops_fail(caplog: pytest.LogCaptureFixture) -> None:
    outage = Outage()
    error = ConnectionRefusedError(111, "Connect call failed")
    with caplog.at_level(logging.DEBUG, logger="zart"):
        for _ in range(5):
            for key in ("claim", "heartbeat", "listener"):
                assert outage.failed(key, error, action="claim_failed") <= LONGEST_RETRY_DELAY
        outage.succeeded("claim")
        outage.failed("heartbeat", error, action="heartbeat_failed")  # a straggler: same outage
        outage.succeeded("heartbeat")
    actions = [(r.levelno, getattr(r, "action", None)) for r in caplog.records]
    assert actions.count((logging.WARNING, "database_unavailable")) == 1
    assert [a for a in actions if a[0] >= logging.WARNING] == [
        (logging.WARNING, "database_unavailable")
    ]
    assert actions.count((logging.INFO, "database_available")) == 2
    assert outage.count == 1
    assert not outage.ongoing


def _caused_by(error: Exception) -> Exception:
    try:
        raise RuntimeError("wrapping") from error
    except RuntimeError as wrapper:
        return wrapper
