"""The free functions a handler calls: outcomes of steps, fallbacks, captured values."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar, overload

from zart.clock import SYSTEM_CLOCK
from zart.errors import RetryExhausted, StepTimedOut
from zart.runtime.context import current_run
from zart.runtime.outcomes import BusinessErr, Ok, ZartErr
from zart.runtime.steps import StepCall

T = TypeVar("T")
D = TypeVar("D")


async def step_outcome(call: StepCall[T]) -> Ok[T] | BusinessErr[Any] | ZartErr:
    """Run a step and return its three-way outcome instead of raising.

    Only the step's own failures become outcomes; Zart's control errors (a lost lease, a
    duplicate step name, ...) still propagate.
    """
    try:
        value = await call
    except (RetryExhausted, StepTimedOut) as error:
        if _is_step_failure(error):
            return ZartErr(error)
        raise
    except Exception as error:
        if _is_step_failure(error):
            return BusinessErr(error)
        raise
    return Ok(value)


def _is_step_failure(error: BaseException) -> bool:
    run = current_run.get()
    # Outside an execution the step simply ran: whatever it raised is its own failure.
    return run is None or run.failure_of(error) is not None


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
    if run is None:
        value = produce()
        return await value if isinstance(value, Awaitable) else value
    return await run.capture(name, produce)


async def now(name: str) -> datetime:
    """The current UTC time, captured durably under ``name`` (same value on every replay)."""
    run = current_run.get()
    clock = SYSTEM_CLOCK if run is None else run.clock
    return await capture(name, clock.now)
