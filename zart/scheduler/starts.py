"""Starting an execution: one path for ``DurableScheduler.start`` (async, own or caller's
transaction) and :func:`enqueue` (the caller's synchronous ``Session``)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict, TypeVar, cast

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from zart import metrics, tracing
from zart.clock import SYSTEM_CLOCK
from zart.database import explain_errors
from zart.durations import parse_duration
from zart.errors import ConfigurationError, InvalidName, InvalidQueue, UnknownTask
from zart.models.names import check_name, check_path_segment, check_tags
from zart.models.queues import (
    DEFAULT_QUEUE,
    Queue,
    check_partition_key,
    check_priority,
    queue_name_of,
)
from zart.repositories import executions as executions_repo
from zart.repositories import start_keys, wakeups
from zart.repositories import workers as workers_repo
from zart.repositories.executors import caller_transaction_sync, sync_connection_of
from zart.repositories.records import CreatedExecution, Lease
from zart.runtime.execution import DEFAULT_MAX_PAYLOAD_BYTES, Runtime
from zart.runtime.registry import DurableHandler, find_handler
from zart.scheduler.base import LIVE_WORKER_WINDOW
from zart.serialization import check_size, to_json

#: What ``start`` takes: a durable handler, or the task name of one.
Target = DurableHandler[..., Any] | str

T = TypeVar("T")


def sync_target(session: AsyncSession | AsyncConnection) -> Session | Connection:
    """The synchronous object whose commit events wake this scheduler's workers."""
    if isinstance(session, AsyncSession):
        return session.sync_session
    if session.sync_connection is None:
        raise ConfigurationError("session= got a connection that is not open")
    return session.sync_connection


@dataclass(frozen=True, slots=True)
class StartRequest:
    task_name: str
    payload: Any
    execution_id: str
    timeout: timedelta | None
    tags: dict[str, str]
    #: The caller's trace context (:func:`zart.tracing.carrier`), the parent of its run spans.
    trace_context: dict[str, str] | None = None
    queue: str = DEFAULT_QUEUE
    partition_key: str | None = None
    priority: int = 0
    #: At most one unfinished execution of the task per key (``docs/queues.md``).
    singleton_key: str | None = None
    #: A debounced start: its window and key (the task's own when none was given).
    debounce: timedelta | None = None
    debounce_key: str | None = None

    @property
    def keyed(self) -> bool:
        """A singleton or debounced start (:mod:`zart.repositories.start_keys`)."""
        return self.singleton_key is not None or self.debounce is not None


#: The longest debounce window a start may ask for.
MAX_DEBOUNCE = timedelta(days=7)
#: The debounce key of a start that names none: one window per task.
TASK_WIDE_KEY = "*"


def check_start_keys(
    singleton_key: object,
    debounce: object,
    debounce_key: object,
    execution_id: str | None,
) -> tuple[str | None, timedelta | None, str | None]:
    """The singleton key, debounce window and debounce key of a start, checked (raising
    :class:`~zart.InvalidQueue` naming the problem, before anything is written)."""
    if singleton_key is not None:
        singleton_key = _key(singleton_key, "singleton key")
    if debounce is None:
        if debounce_key is not None:
            raise InvalidQueue("debounce_key= needs debounce= (the window, e.g. '30s')")
        return singleton_key, None, None
    if singleton_key is not None:
        raise InvalidQueue("a start is either debounced or a singleton, not both")
    if execution_id is not None:
        raise InvalidQueue(
            "a debounced start takes no execution_id: every start in the window returns the "
            "id of the one execution that runs after it"
        )
    try:
        window = parse_duration(cast(Any, debounce), name="debounce")
    except ConfigurationError as exc:
        raise InvalidQueue(str(exc)) from None
    if not timedelta(0) < window <= MAX_DEBOUNCE:
        raise InvalidQueue(f"debounce must be more than 0 and at most 7d, not {debounce!r}")
    key = TASK_WIDE_KEY if debounce_key is None else _key(debounce_key, "debounce key")
    return None, window, key


def _key(value: object, what: str) -> str:
    try:
        return check_name(value, what)
    except InvalidName as exc:
        raise InvalidQueue(str(exc)) from None


class StartOptions(TypedDict, total=False):
    """The options of a start besides its handler, payload, id and session: the keywords
    :meth:`DurableScheduler.start` takes, as :class:`SyncScheduler` forwards them."""

    tags: Mapping[str, str] | None
    queue: Queue | str | None
    partition_key: str | None
    priority: int
    singleton_key: str | None
    debounce: timedelta | str | float | None
    debounce_key: str | None


async def start_request(
    handler: Target,
    payload: Any,
    execution_id: str | None,
    *,
    max_payload_bytes: int,
    live_task_names: Callable[[], Awaitable[set[str]]],
    tags: Mapping[str, str] | None = None,
    queue: Queue | str | None = None,
    partition_key: str | None = None,
    priority: int = 0,
    singleton_key: str | None = None,
    debounce: timedelta | str | float | None = None,
    debounce_key: str | None = None,
) -> StartRequest:
    """Check what to start before anything is written: the handler (or a task name some live
    worker runs), the payload against the handler's input model, its size, the id, the
    tags, the queue (given, else the handler's), partition key and priority."""
    if isinstance(handler, DurableHandler):
        target: DurableHandler[..., Any] | None = handler
        task_name = handler.name
    elif isinstance(handler, str):
        task_name = check_name(handler, "task name")
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
    if execution_id is not None:
        check_path_segment(execution_id, "execution id")
    checked_tags = check_tags(tags)
    keys = check_start_keys(singleton_key, debounce, debounce_key, execution_id)
    if queue is None:
        queue = DEFAULT_QUEUE if target is None else target.queue
    return StartRequest(
        task_name=task_name,
        payload=stored,
        execution_id=execution_id or str(uuid.uuid4()),
        timeout=None if target is None else target.timeout,
        tags=checked_tags,
        trace_context=tracing.carrier(),
        queue=queue_name_of(queue),
        partition_key=check_partition_key(partition_key),
        priority=check_priority(priority),
        singleton_key=keys[0],
        debounce=keys[1],
        debounce_key=keys[2],
    )


def start_operation(
    request: StartRequest, now: datetime, channel: str | None
) -> tuple[Callable[..., Any], dict[str, Any]]:
    """The operation that starts ``request`` and its arguments: a singleton or debounced
    start's (:mod:`zart.repositories.start_keys`), else
    :func:`~zart.repositories.executions.create_execution`."""
    arguments = created(request, now, channel)
    if not request.keyed:
        return executions_repo.create_execution, arguments
    arguments.update(
        claimable_at=now if request.debounce is None else now + request.debounce,
        singleton_key=request.singleton_key,
        debounce_key=request.debounce_key,
    )
    del arguments["lease"]
    return start_keys.create_keyed_execution, arguments


def created(
    request: StartRequest, now: datetime, channel: str | None, lease: Lease | None = None
) -> dict[str, Any]:
    """The arguments of :func:`zart.repositories.executions.create_execution` for
    ``request``: with ``channel``, a new execution wakes workers at commit (the caller's,
    with ``session=``); with ``lease`` (an in-process worker's,
    :meth:`zart.worker.Worker.reserve`) it is inserted already claimed and wakes nobody."""
    return {
        "execution_id": request.execution_id,
        "task_name": request.task_name,
        "payload": request.payload,
        "now": now,
        "deadline_at": None if request.timeout is None else now + request.timeout,
        "lease": lease,
        "channel": channel,
        "tags": request.tags,
        "trace_context": request.trace_context,
        "queue": request.queue,
        "partition_key": request.partition_key,
        "priority": request.priority,
    }


async def create_claimed(runtime: Runtime, request: StartRequest, lease: Lease) -> CreatedExecution:
    """Insert the execution already claimed with ``lease`` (an in-process worker's), committed
    on the worker's own connections: a single autocommit statement on PostgreSQL, one hop to
    SQLite's writer thread."""
    return await runtime.store.run(
        executions_repo.create_execution,
        **created(request, runtime.clock.now(), None, lease),
    )


def enqueue(
    session: Session | Connection,
    handler: Target,
    payload: Any = None,
    *,
    execution_id: str | None = None,
    schema: str | None = None,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    tags: Mapping[str, str] | None = None,
    queue: Queue | str | None = None,
    partition_key: str | None = None,
    priority: int = 0,
    singleton_key: str | None = None,
    debounce: timedelta | str | float | None = None,
    debounce_key: str | None = None,
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
    connection = sync_connection_of(session)
    explain_errors(connection.engine)
    with caller_transaction_sync(connection, schema) as db:

        async def live_task_names() -> set[str]:
            seen_since = SYSTEM_CLOCK.now() - LIVE_WORKER_WINDOW
            return db.run(workers_repo.live_task_names, seen_since=seen_since)

        # start_request awaits nothing but the read above, which completes at once.
        request = _run_to_completion(
            start_request(
                handler,
                payload,
                execution_id,
                max_payload_bytes=max_payload_bytes,
                live_task_names=live_task_names,
                tags=tags,
                queue=queue,
                partition_key=partition_key,
                priority=priority,
                singleton_key=singleton_key,
                debounce=debounce,
                debounce_key=debounce_key,
            )
        )
        channel = wakeups.channel_for(schema)
        operation, arguments = start_operation(request, SYSTEM_CLOCK.now(), channel)
        done: CreatedExecution = db.run(operation, **arguments)
    if done.created:
        metrics.execution_started(request.task_name)
    return done.execution.execution_id


def _run_to_completion(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        coroutine.send(None)
    except StopIteration as finished:
        return cast(T, finished.value)
    coroutine.close()
    raise RuntimeError("enqueue() met a coroutine that waits for I/O; this is a bug in Zart")
