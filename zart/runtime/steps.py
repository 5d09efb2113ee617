"""Steps: ``@zart.step(name, retry=, timeout=, timeout_scope=, transactional=)`` and the
awaitable step call.

Calling a step function does not run it: it returns a :class:`StepCall`, which runs when
awaited — durably inside an execution (replayed from its stored outcome when there is one),
plainly outside one. ``.named(...)`` overrides the step name at the call site.
"""

from __future__ import annotations

import functools
import inspect
import string
from collections.abc import Callable, Coroutine, Generator
from datetime import timedelta
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, overload

from zart.durations import RetryPolicy, parse_duration, parse_retry
from zart.errors import ConfigurationError
from zart.models.names import check_name
from zart.runtime.attempts import run_step
from zart.runtime.definitions import StepDefinition, TimeoutScope
from zart.runtime.run import current_run, current_step
from zart.runtime.transactions import check_transactional

P = ParamSpec("P")
R = TypeVar("R")


class StepCall(Coroutine[Any, Any, R], Generic[R]):
    """One call of a step function, not yet run.

    It is a real coroutine (so ``asyncio.TaskGroup.create_task`` accepts it) whose work starts
    on the first ``await``; ``.named()`` must come before that.
    """

    __slots__ = ("_coroutine", "args", "definition", "kwargs", "name_override")

    def __init__(
        self,
        definition: StepDefinition,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name_override: str | None = None,
    ) -> None:
        self.definition = definition
        self.args = args
        self.kwargs = kwargs
        self.name_override = name_override
        self._coroutine: Coroutine[Any, Any, R] | None = None

    @property
    def name(self) -> str:
        if self.name_override is not None:
            return self.name_override
        return self.definition.resolve_name(self.args, self.kwargs)

    def named(self, name: str) -> StepCall[R]:
        """This call under another step name (for static step functions called in a loop)."""
        check_name(name, "step name")
        if self._coroutine is not None:
            raise ConfigurationError(".named() must be called before the step is awaited")
        return StepCall(self.definition, self.args, self.kwargs, name)

    def _started(self) -> Coroutine[Any, Any, R]:
        if self._coroutine is None:
            self._coroutine = _run_call(self)
        return self._coroutine

    def __await__(self) -> Generator[Any, None, R]:
        return self._started().__await__()

    def send(self, value: Any) -> Any:
        return self._started().send(value)

    def throw(self, *args: Any) -> Any:
        return self._started().throw(*args)

    def close(self) -> None:
        if self._coroutine is not None:
            self._coroutine.close()

    def __repr__(self) -> str:
        return f"<StepCall {self.name!r}>"


async def _run_call(call: StepCall[R]) -> R:
    run = current_run.get()
    # Outside an execution, or inside another step's body: just run the function.
    if run is None or current_step.get() is not None:
        result: R = await call.definition.invoke(call.args, call.kwargs)
        return result
    stepped: R = await run_step(run, call.definition, call.args, call.kwargs, call.name)
    return stepped


class StepFunction(Generic[P, R]):
    """A function decorated with ``@zart.step``; calling it gives a :class:`StepCall`."""

    def __init__(self, definition: StepDefinition) -> None:
        self.definition = definition
        functools.update_wrapper(self, definition.fn)

    @property
    def step_name(self) -> str:
        return self.definition.name

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> StepCall[R]:
        return StepCall(self.definition, args, kwargs)

    def __repr__(self) -> str:
        return f"<zart step {self.definition.name!r}>"


def _placeholders(name: str, signature: inspect.Signature) -> frozenset[str]:
    fields: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(name))
    except ValueError as exc:
        raise ConfigurationError(f"invalid step name template {name!r}: {exc}") from exc
    for _literal, field_name, _spec, conversion in parsed:
        if field_name is None:
            continue
        if conversion not in (None, "r", "s", "a"):
            raise ConfigurationError(
                f"step name {name!r} uses the conversion !{conversion} in {{{field_name}}};"
                " only !r, !s and !a exist"
            )
        root = field_name.split(".", 1)[0].split("[", 1)[0]
        if root not in signature.parameters:
            raise ConfigurationError(
                f"step name {name!r} refers to {{{field_name}}}, but the function has no"
                f" parameter {root!r} (parameters: {', '.join(signature.parameters) or 'none'})"
            )
        fields.add(root)
    if not fields:  # a fixed name: check it now rather than at every call
        check_name(name, "step name")
    return frozenset(fields)


class StepDecorator(Protocol):
    """What ``@zart.step(name, ...)`` returns: keeps the function's parameters and result type
    (an async function's awaited result, a sync function's return value)."""

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> StepFunction[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> StepFunction[P, R]: ...


def define_step(
    name: str,
    *,
    retry: str | RetryPolicy | None = None,
    timeout: timedelta | float | str | None = None,
    timeout_scope: TimeoutScope = "global",
    transactional: bool = False,
) -> StepDecorator:
    """The ``@zart.step(name, ...)`` decorator. Every option is checked here, at import time.

    ``transactional=True``: each attempt runs in a transaction that also records the step's
    outcome; ``zart.session()`` inside the body is its ``AsyncSession`` (see
    :mod:`zart.runtime.transactions`).
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError("a step needs a non-empty name")
    policy = parse_retry(retry)
    limit = None if timeout is None else parse_duration(timeout, name="timeout")
    if timeout_scope not in ("global", "per_attempt"):
        raise ConfigurationError(
            f"timeout_scope must be 'global' or 'per_attempt', not {timeout_scope!r}"
        )
    if not isinstance(transactional, bool):
        raise ConfigurationError(f"transactional must be True or False, not {transactional!r}")

    def decorate(fn: Callable[..., Any]) -> StepFunction[..., Any]:
        if not callable(fn):
            raise ConfigurationError(f"@zart.step({name!r}) decorates a function")
        if transactional:
            check_transactional(fn, name)
        signature = inspect.signature(fn)
        definition = StepDefinition(
            name=name,
            fn=fn,
            retry=policy,
            timeout=limit,
            timeout_scope=timeout_scope,
            signature=signature,
            placeholders=_placeholders(name, signature),
            transactional=transactional,
            positional=_plain_positional(signature),
        )
        return StepFunction(definition)

    return decorate  # type: ignore[return-value]


def _plain_positional(signature: inspect.Signature) -> tuple[str, ...] | None:
    plain = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if all(p.kind in plain for p in signature.parameters.values()):
        return tuple(signature.parameters)
    return None
