"""Durable handlers: ``@zart.durable(name)`` and the registry that maps task names to them."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, ParamSpec, TypeVar

from pydantic import ValidationError

from zart.durations import parse_duration
from zart.errors import ConfigurationError, InvalidPayload, SerializationError
from zart.models import CatchupPolicy, OverlapPolicy
from zart.models.names import COMPENSATION_SUFFIX, check_name, compensation_of
from zart.models.queues import DEFAULT_QUEUE, Queue, queue_name_of
from zart.runtime.outcomes import ExecutionFailure
from zart.schedules.loop import DeclaredSchedule
from zart.schedules.plans import DEFAULT_CATCHUP, DEFAULT_OVERLAP, ScheduleSpec
from zart.schedules.plans import check_name as check_schedule_name
from zart.serialization import check_readable, from_json, to_json

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

OnFailure = Callable[[Any, ExecutionFailure], Any]
OnCancel = Callable[..., Awaitable[Any]]

#: The argument of a handler that takes no input.
NO_INPUT = object()


@dataclass(eq=False)
class DurableHandler(Generic[P, R]):
    """A registered durable handler. Calling it runs the function directly (no durability),
    which keeps handlers unit-testable; ``DurableScheduler.start`` runs it durably."""

    name: str
    fn: Callable[P, Awaitable[R]]
    timeout: timedelta | None = None
    on_failure: OnFailure | None = None
    #: The cron schedule declared with ``@zart.durable(name, schedule=...)``, if any.
    schedule: ScheduleSpec | None = None
    #: The handler of the compensation run when an execution of this one is cancelled
    #: (``@zart.durable(name, on_cancel=fn)``), registered as task ``"<name>:on_cancel"``.
    on_cancel: DurableHandler[..., Any] | None = None
    #: How long its finished executions are kept before workers prune them
    #: (``@zart.durable(name, retention="30d")``); ``None``: the worker's ``retention``.
    retention: timedelta | None = None
    #: For a compensation: the handler whose cancelled executions it undoes (whose input type
    #: its unannotated parameter takes).
    undoes: DurableHandler[..., Any] | None = field(default=None, repr=False)
    #: Claims in a row that may end without a report (the worker died or lost its lease
    #: mid-run) before the execution fails as a crash loop; ``None``: the worker's option.
    max_claims: int | None = None
    #: The queue its executions join unless a start names another
    #: (``@zart.durable(name, queue="emails")``).
    queue: str = DEFAULT_QUEUE
    _hints: dict[str, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        functools.update_wrapper(self, self.fn)
        parameters = list(inspect.signature(self.fn).parameters.values())
        if len(parameters) > 1:
            raise ConfigurationError(
                f"durable handler {self.name!r} takes {len(parameters)} parameters; it takes"
                " one input (a pydantic model, dataclass, TypedDict or JSON value) or none"
            )
        self._parameter = parameters[0].name if parameters else None

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R]:
        return self.fn(*args, **kwargs)

    # Annotations are resolved on first use, so handlers may refer to types defined later in
    # their module (``from __future__ import annotations``).
    def _annotation(self, key: str) -> Any:
        if self._hints is None:
            try:
                self._hints = typing.get_type_hints(self.fn)
            except Exception as exc:
                raise ConfigurationError(
                    f"cannot resolve the annotations of durable handler {self.name!r}: {exc}"
                ) from exc
        return self._hints.get(key, Any)

    @property
    def takes_input(self) -> bool:
        return self._parameter is not None

    @property
    def input_type(self) -> Any:
        if self._parameter is None:
            return Any
        if self.undoes is not None and self._parameter not in self._hints_of_fn():
            return self.undoes.input_type  # a compensation takes the input of what it undoes
        return self._annotation(self._parameter)

    def _hints_of_fn(self) -> dict[str, Any]:
        self._annotation("return")  # resolves them once
        return self._hints or {}

    @property
    def output_type(self) -> Any:
        return self._annotation("return")

    def payload_from(self, data: Any) -> Any:
        """Validate ``data`` (a value or plain JSON) as this handler's input and return the JSON
        to store. Raises :class:`InvalidPayload` naming the problem."""
        if not self.takes_input:
            if data not in (None, {}):
                raise InvalidPayload(f"durable handler {self.name!r} takes no input")
            return None
        try:
            value = from_json(data, self.input_type)
            return to_json(value, self.input_type, name="payload")
        except ValidationError as exc:
            raise InvalidPayload(f"invalid payload for task {self.name!r}: {exc}") from exc
        except SerializationError:
            raise
        except (TypeError, ValueError) as exc:
            raise InvalidPayload(f"invalid payload for task {self.name!r}: {exc}") from exc

    def input_from(self, payload: Any) -> Any:
        """The handler's argument, rebuilt from the stored payload."""
        if not self.takes_input:
            return NO_INPUT
        check_readable(payload)  # a planted row the engine could not read
        try:
            return from_json(payload, self.input_type)
        except ValidationError as exc:
            raise InvalidPayload(
                f"stored payload no longer fits task {self.name!r}: {exc}"
            ) from exc

    def call_with(self, argument: Any) -> Awaitable[R]:
        if argument is NO_INPUT:
            return self.fn()  # type: ignore[call-arg]
        return self.fn(argument)  # type: ignore[call-arg]

    def result_to_json(self, value: Any) -> Any:
        """The handler's result as stored (plain JSON shaped by the return annotation)."""
        try:
            return to_json(value, self.output_type, name=f"the result of task {self.name!r}")
        except SerializationError:
            raise
        except Exception as exc:
            raise SerializationError(
                f"the result of task {self.name!r} cannot be stored as JSON: {exc}"
            ) from exc

    def result_from_json(self, data: Any) -> Any:
        return from_json(data, self.output_type)


class ExecutionId(str, Generic[R_co]):
    """An execution id, as ``start`` returns it: a plain ``str`` at run time, which also tells
    a type checker what the execution's handler returns, so that
    ``await scheduler.wait(execution_id)`` is typed as that (``ExecutionId[Any]`` for a start
    by task name)."""

    __slots__ = ()


_registry: dict[str, DurableHandler[..., Any]] = {}


def durable(
    name: str,
    *,
    timeout: timedelta | float | str | None = None,
    on_failure: OnFailure | None = None,
    schedule: str | None = None,
    timezone: str = "UTC",
    overlap: OverlapPolicy | str = DEFAULT_OVERLAP,
    catchup: CatchupPolicy | str = DEFAULT_CATCHUP,
    on_cancel: OnCancel | None = None,
    max_claims: int | None = None,
    retention: timedelta | float | str | None = None,
    queue: Queue | str | None = None,
) -> Callable[[Callable[P, Awaitable[R]]], DurableHandler[P, R]]:
    """Register an async function as the durable handler of task ``name``.

    ``timeout`` is a deadline counted from when the execution was started; past it the execution
    fails (``on_failure`` first gets a chance). ``on_failure(data, failure)`` may turn a failure
    into a normal result by returning one.

    ``schedule="0 9 * * *"`` (5 fields, or 6 with seconds first) also starts the handler on
    that cron schedule, read in ``timezone`` (an IANA name), with the ``overlap`` (``skip``,
    ``allow``, ``cancel_previous``) and ``catchup`` (``skip``, ``latest``, ``all``) policies;
    the schedule is named after the task and stored when a worker running it starts. The
    handler gets no input (``None``); ``zart.context().fire_time`` says which fire time it
    serves. An invalid expression, time zone or policy raises :class:`~zart.InvalidSchedule`
    here, at import time.

    ``on_cancel=fn`` (an async function taking the handler's input, or nothing) undoes what a
    cancelled execution did: cancelling an execution that a worker had begun starts, in the
    cancel's transaction, a compensation execution of task ``"<name>:on_cancel"`` with the
    cancelled execution's payload. It is durable like any execution (steps, retries, sleeps);
    ``zart.context().compensates`` names the execution it undoes. See ``docs/scheduler.md``.

    ``max_claims`` (default: the worker's ``max_claims`` option, 5): after that many claims
    in a row ended without the worker reporting back (it died, was killed, or lost its lease
    while the run was in flight), the next claim fails the execution with a stored
    ``crash_loop`` error instead of running it again.

    ``retention="30d"``: workers running the handler delete its finished executions (with all
    their rows) once they finished that long ago; without it, the worker's ``retention``
    option applies (none by default: kept for ever). See ``docs/operations.md``.

    ``queue=`` (a :class:`zart.Queue` or its name; default ``"default"``): the queue its
    executions join, whose limits hold across workers (``docs/queues.md``).
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError("a durable handler needs a non-empty task name")
    check_name(name, "task name")
    if max_claims is not None and (
        isinstance(max_claims, bool) or not isinstance(max_claims, int) or max_claims < 1
    ):
        raise ConfigurationError(
            f"durable handler {name!r}: max_claims must be a whole number of at least 1,"
            f" not {max_claims!r}"
        )
    queue_name = DEFAULT_QUEUE if queue is None else queue_name_of(queue)
    limit = None if timeout is None else parse_duration(timeout, name="timeout")
    kept = _retention(name, retention)
    spec = (
        None
        if schedule is None
        else ScheduleSpec.create(schedule, timezone=timezone, overlap=overlap, catchup=catchup)
    )
    if spec is not None:
        check_schedule_name(name)
    if name.endswith(COMPENSATION_SUFFIX):
        raise ConfigurationError(
            f"task name {name!r} ends with {COMPENSATION_SUFFIX!r}, which names the"
            " compensation of another task: pass the function as on_cancel= of that task"
        )
    if on_cancel is not None:
        check_name(compensation_of(name), "task name with its ':on_cancel' suffix")

    def register(fn: Callable[P, Awaitable[R]]) -> DurableHandler[P, R]:
        if not inspect.iscoroutinefunction(fn):
            raise ConfigurationError(f"durable handler {name!r} must be an async function")
        handler = DurableHandler(
            name=name,
            fn=fn,
            timeout=limit,
            on_failure=on_failure,
            schedule=spec,
            max_claims=max_claims,
            retention=kept,
            queue=queue_name,
        )
        if on_cancel is not None:
            handler.on_cancel = _compensation(handler, on_cancel)
        if spec is not None and handler.takes_input:
            raise ConfigurationError(
                f"durable handler {name!r} has schedule= and takes an input; a declared"
                " schedule starts it with no payload: drop the parameter, or use"
                " scheduler.add_schedule(..., payload=...)"
            )
        existing = _registry.get(name)
        if existing is not None and _origin(existing.fn) != _origin(fn):
            raise ConfigurationError(
                f"two durable handlers are registered as {name!r}: {_origin(existing.fn)} and"
                f" {_origin(fn)}"
            )
        _registry[name] = handler
        if handler.on_cancel is not None:
            _registry[handler.on_cancel.name] = handler.on_cancel
        return handler

    return register


def _retention(name: str, retention: timedelta | float | str | None) -> timedelta | None:
    kept = None if retention is None else parse_duration(retention, name="retention")
    if kept is not None and kept <= timedelta(0):
        raise ConfigurationError(f"retention of durable handler {name!r} must be positive")
    return kept


def _compensation(handler: DurableHandler[..., Any], fn: OnCancel) -> DurableHandler[..., Any]:
    """The handler of ``handler``'s compensation: ``fn``, run on the cancelled execution's
    payload as a durable handler of its own."""
    name = handler.name
    if not inspect.iscoroutinefunction(fn):
        raise ConfigurationError(f"on_cancel of durable handler {name!r} must be an async function")
    try:
        return DurableHandler(name=compensation_of(name), fn=fn, undoes=handler)
    except ConfigurationError as exc:  # more than one parameter
        raise ConfigurationError(f"on_cancel of durable handler {name!r}: {exc}") from exc


def _origin(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def find_handler(name: str) -> DurableHandler[..., Any] | None:
    return _registry.get(name)


def compensated_names() -> frozenset[str]:
    """The task names registered in this process that declare ``on_cancel``."""
    return frozenset(name for name, handler in _registry.items() if handler.on_cancel)


def retentions() -> dict[str, timedelta]:
    """The task names registered in this process that declare a ``retention``, with it."""
    return {name: h.retention for name, h in _registry.items() if h.retention is not None}


def declared_schedules(task_names: Iterable[str]) -> list[DeclaredSchedule]:
    """The cron schedules declared on the handlers of ``task_names``
    (``@zart.durable(name, schedule=...)``)."""
    return [
        DeclaredSchedule(name, handler.schedule)
        for name in task_names
        if (handler := _registry.get(name)) is not None and handler.schedule is not None
    ]


def registered_names() -> list[str]:
    return sorted(_registry)


def unregister(name: str) -> None:
    """Forget the durable handler of task ``name`` (tests that register handlers, such as
    scheduled ones every worker would pick up, only for their own duration)."""
    handler = _registry.pop(name, None)
    if handler is not None and handler.on_cancel is not None:
        _registry.pop(handler.on_cancel.name, None)
