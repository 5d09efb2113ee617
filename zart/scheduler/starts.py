"""Starting an execution: one path for ``DurableScheduler.start`` (async, own or caller's
transaction) and :func:`enqueue` (the caller's synchronous ``Session``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from zart.clock import SYSTEM_CLOCK
from zart.database import in_schema
from zart.errors import ConfigurationError, InvalidPayload, UnknownTask
from zart.repositories import executions as executions_repo
from zart.repositories import wakeups
from zart.repositories import workers as workers_repo
from zart.repositories.records import CreatedExecution, Lease
from zart.runtime.execution import DEFAULT_MAX_PAYLOAD_BYTES, Runtime
from zart.runtime.registry import DurableHandler, find_handler
from zart.scheduler.base import LIVE_WORKER_WINDOW
from zart.serialization import check_size, to_json

#: What ``start`` takes: a durable handler, or the task name of one.
Target = DurableHandler[..., Any] | str

T = TypeVar("T")


@asynccontextmanager
async def transaction(
    engine: AsyncEngine, session: AsyncSession | AsyncConnection | None, schema: str | None
) -> AsyncIterator[AsyncConnection]:
    """The caller's transaction when a session is given (never committed here), else a
    transaction of our own committed on exit.

    In the caller's transaction Zart's tables are put in ``schema`` for our statements only
    (``in_schema``), and on PostgreSQL our statements run under a savepoint: an error rolls
    back what we wrote and nothing else, and the caller's transaction stays usable. (SQLite
    undoes a failed statement by itself, and a savepoint there would commit the caller's work
    early with drivers that begin transactions lazily.)
    """
    if session is None:
        async with engine.begin() as conn:
            yield conn
        return
    if isinstance(session, AsyncSession):
        conn = await session.connection()
    elif isinstance(session, AsyncConnection):
        conn = session
    else:
        raise ConfigurationError(
            f"session= takes an AsyncSession or AsyncConnection, not {type(session).__name__}"
        )
    with in_schema(_sync_connection(conn), schema):
        if conn.dialect.name == "postgresql":
            async with conn.begin_nested():
                yield conn
        else:
            yield conn


def _sync_connection(conn: AsyncConnection) -> Connection:
    if conn.sync_connection is None:
        raise ConfigurationError("session= got a connection that is not open")
    return conn.sync_connection


def sync_target(session: AsyncSession | AsyncConnection) -> Session | Connection:
    if isinstance(session, AsyncSession):
        return session.sync_session
    return _sync_connection(session)


@dataclass(frozen=True, slots=True)
class StartRequest:
    task_name: str
    payload: Any
    execution_id: str
    timeout: timedelta | None


async def start_request(
    handler: Target,
    payload: Any,
    execution_id: str | None,
    *,
    max_payload_bytes: int,
    live_task_names: Callable[[], Awaitable[set[str]]],
) -> StartRequest:
    """Check what to start before anything is written: the handler (or a task name some live
    worker runs), the payload against the handler's input model, its size, the id."""
    if isinstance(handler, DurableHandler):
        target: DurableHandler[..., Any] | None = handler
        task_name = handler.name
    elif isinstance(handler, str):
        task_name = handler
        target = find_handler(task_name)
        if target is None and task_name not in await live_task_names():
            raise UnknownTask(task_name)
    else:
        raise ConfigurationError(
            f"start() takes a durable handler or a task name, not {type(handler).__name__}"
        )
    # Started by name for a handler only a remote worker knows: the worker validates it.
    stored = to_json(payload, name="payload") if target is None else target.payload_from(payload)
    check_size(stored, max_payload_bytes, name="payload")
    if execution_id is not None and (not isinstance(execution_id, str) or not execution_id):
        raise InvalidPayload("execution_id must be a non-empty string")
    return StartRequest(
        task_name=task_name,
        payload=stored,
        execution_id=execution_id or str(uuid.uuid4()),
        timeout=None if target is None else target.timeout,
    )


async def create(
    conn: AsyncConnection,
    request: StartRequest,
    *,
    now: datetime,
    channel: str,
    lease: Lease | None = None,
) -> CreatedExecution:
    """Insert the execution (idempotently) and queue its wake-up, in ``conn``'s transaction.

    With ``lease`` (an in-process worker's, :meth:`zart.worker.Worker.reserve`) it is inserted
    already claimed by that worker and wakes nobody."""
    created = await executions_repo.create_execution(
        conn,
        execution_id=request.execution_id,
        task_name=request.task_name,
        payload=request.payload,
        now=now,
        deadline_at=None if request.timeout is None else now + request.timeout,
        lease=lease,
    )
    if created.created and lease is None:  # sent at commit: the caller's, with session=
        await wakeups.notify(conn, channel, request.task_name)
    return created


async def create_claimed(runtime: Runtime, request: StartRequest, lease: Lease) -> CreatedExecution:
    """Insert the execution already claimed with ``lease`` (an in-process worker's), committed
    on the worker's own connections: a single autocommit statement on PostgreSQL's driver
    connection, one hop to SQLite's writer thread."""
    now = runtime.clock.now()
    values: dict[str, Any] = {
        "execution_id": request.execution_id,
        "task_name": request.task_name,
        "payload": request.payload,
        "now": now,
        "deadline_at": None if request.timeout is None else now + request.timeout,
        "lease": lease,
    }
    if (driver := runtime.driver) is not None:
        async with driver.connection() as session:
            return await executions_repo.create_execution_driver(session, **values)
    if (writer := runtime.sqlite_writer) is not None:
        return await writer.transaction(
            lambda session: executions_repo.create_execution_sqlite(session, **values)
        )
    # Worker.reserve hands out leases only once start() opened one or the other.
    raise RuntimeError("a start was handed to a worker whose connections are not open")


def enqueue(
    session: Session | Connection,
    handler: Target,
    payload: Any = None,
    *,
    execution_id: str | None = None,
    schema: str | None = None,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
) -> str:
    """Start an execution from synchronous code (Flask, scripts) inside the caller's
    SQLAlchemy ``Session`` or ``Connection`` transaction; return its id.

    ``await scheduler.start(handler, payload, session=...)`` for an application without an
    event loop: the execution row (and, on PostgreSQL, the NOTIFY that wakes workers) is
    written in the caller's transaction and never committed here; roll back and nothing
    starts. It only enqueues: workers run elsewhere (``zart worker``); on SQLite they find it
    at their next poll. ``schema`` must be the workers' ``schema=``. Idempotent by
    ``execution_id`` exactly like ``start``; bad input raises before anything is written.
    """
    if isinstance(session, Session):
        connection = session.connection()
    elif isinstance(session, Connection):
        connection = session
    else:
        raise ConfigurationError(
            f"enqueue() takes a Session or Connection, not {type(session).__name__}"
            " (async code: use DurableScheduler.start(..., session=...))"
        )
    # The repository coroutines, run over the caller's synchronous connection.
    bridge = cast(AsyncConnection, _SyncBridge(connection))

    async def live_task_names() -> set[str]:
        seen_since = SYSTEM_CLOCK.now() - LIVE_WORKER_WINDOW
        return await workers_repo.live_task_names(bridge, seen_since=seen_since)

    async def start() -> CreatedExecution:
        with in_schema(connection, schema):
            request = await start_request(
                handler,
                payload,
                execution_id,
                max_payload_bytes=max_payload_bytes,
                live_task_names=live_task_names,
            )
            savepoint: AbstractContextManager[Any] = (
                connection.begin_nested()
                if connection.dialect.name == "postgresql"
                else nullcontext()
            )
            with savepoint:
                return await create(
                    bridge, request, now=SYSTEM_CLOCK.now(), channel=wakeups.channel_for(schema)
                )

    return _run_to_completion(start()).execution.execution_id


class _SyncBridge:
    """A synchronous ``Connection`` in the shape the repository functions use (``execute``,
    ``scalar``, ``dialect``). Its coroutines finish without ever suspending, so
    :func:`_run_to_completion` runs them without an event loop: one repository for both
    worlds, no hand-kept synchronous twin."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self.dialect = connection.dialect

    async def execute(self, statement: Any, parameters: Any = None, **options: Any) -> Any:
        return self._connection.execute(statement, parameters, **options)

    async def scalar(self, statement: Any, parameters: Any = None, **options: Any) -> Any:
        return self._connection.scalar(statement, parameters, **options)


def _run_to_completion(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        coroutine.send(None)
    except StopIteration as finished:
        return cast(T, finished.value)
    coroutine.close()
    raise RuntimeError("enqueue() met a coroutine that waits for I/O; this is a bug in Zart")
