"""The free functions a handler calls: outcomes of steps, fallbacks, captured values."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar, overload

from zart.clock import SYSTEM_CLOCK
from zart.errors import RetryExhausted, StepTimedOut
from zart.runtime.context import current_run, current_step
from zart.runtime.outcomes import BusinessErr, Ok, ZartErr
from zart.runtime.steps import StepCall

T = TypeVar("T")
D = TypeVar("D")


async def step_outcome(call: StepCall[T]) -> Ok[T] | BusinessErr[Any] | ZartErr:
    """Run a step and return its three-way outcome instead of raising.

    Only the step's own failures become outcomes: its exception (BusinessErr), its retries
    running out or its timeout (ZartErr). Zart's control errors (a lost lease, a duplicate step
    name, a result that cannot be stored) still propagate.
    """
    try:
        value = await call
    except Exception as error:
        kind = _failure_kind(error)
        if kind is None or kind == "unserializable_result":
            raise
        if kind in ("retry_exhausted", "timed_out") and isinstance(
            error, RetryExhausted | StepTimedOut
        ):
            return ZartErr(error)
        return BusinessErr(error)
    return Ok(value)


def _failure_kind(error: BaseException) -> str | None:
    """How the running step failed, as stored; ``None`` when ``error`` is not a step failure."""
    run = current_run.get()
    if run is None:
        return "business"  # outside an execution the step just ran: its error is its own
    failure = run.failure_of(error)
    if failure is None:
        return None
    raw = failure[1]
    return str(raw.get("kind", "business")) if isinstance(raw, dict) else "business"


async def step_or(call: StepCall[T], default: D) -> T | D:
    """Run a step; any failure (its own or Zart's) gives ``default``."""
    outcome = await step_outcome(call)
    return outcome.value if isinstance(outcome, Ok) else default


async def step_or_else(call: StepCall[T], fallback: Callable[[Any], D]) -> T | D:
    """Run a step; its own failure gives ``fallback(error)``. Zart's failures (retries ran out,
    timeout) are raised, not handed to the fallback."""
    outcome = await step_outcome(call)
    if isinstance(outcome, Ok):
        return outcome.value
    if isinstance(outcome, ZartErr):
        raise outcome.error
    return fallback(outcome.error)


@overload
async def capture(name: str, produce: Callable[[], Awaitable[T]]) -> T: ...
@overload
async def capture(name: str, produce: Callable[[], T]) -> T: ...
async def capture(name: str, produce: Callable[[], Any]) -> Any:
    """Store the value ``produce()`` returns under ``name``; replays return the stored value
    and never call ``produce`` again (timestamps, generated ids, feature flags)."""
    run = current_run.get()
    if run is None or current_step.get() is not None:
        # Outside an execution, or inside a step body (whose outcome is what gets stored, and
        # whose retries would otherwise reuse the name): just produce the value.
        value = produce()
        return await value if inspect.isawaitable(value) else value
    return await run.capture(name, produce)


async def now(name: str) -> datetime:
    """The current UTC time, captured durably under ``name`` (same value on every replay)."""
    run = current_run.get()
    clock = SYSTEM_CLOCK if run is None else run.clock
    return await capture(name, clock.now)
