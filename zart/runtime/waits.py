"""Durable waits: ``zart.sleep``, ``zart.sleep_until`` and ``zart.wait_for_event``.

A wait is a step row of its own (kind ``sleep`` or ``event``) so replay finds it by name. A
short wait stays in memory; a long one (and every wait for an event not yet delivered) records
a timer where it has a deadline, unwinds the handler and releases the lease: the execution
becomes ``waiting`` and holds no worker slot until a timer is due or an event arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

from pydantic import ValidationError

from zart.durations import parse_duration
from zart.errors import ConfigurationError, EventTimeout, InvalidPayload, OutsideExecution
from zart.models import StepKind, StepStatus, TimerKind
from zart.models.names import check_path_segment
from zart.repositories import events as events_repo
from zart.repositories import steps as steps_repo
from zart.repositories.records import EventRecord
from zart.runtime.run import RunState, current_run, current_step
from zart.serialization import check_readable, from_json
from zart.serialization.schemas import model_schema

T = TypeVar("T")


def _run_for(what: str) -> RunState | None:
    if current_step.get() is not None:
        raise ConfigurationError(
            f"{what} waits durably and is called from the durable handler, not inside a step"
        )
    return current_run.get()


async def sleep(name: str, duration: timedelta | float | str) -> None:
    """Sleep durably for ``duration`` (a timedelta, seconds, or ``"24h"``-style string).

    The wake-up time is stored on the first run, so a restart during the sleep does not start
    it over. Outside an execution it is a plain ``asyncio.sleep``.
    """
    delay = parse_duration(duration, name="sleep duration")
    run = _run_for("zart.sleep")
    if run is None:
        await asyncio.sleep(delay.total_seconds())
        return
    await _sleep_until(run, name, run.clock.now() + delay)


async def sleep_until(name: str, when: datetime) -> None:
    """Sleep durably until ``when`` (timezone-aware); a time in the past returns at once."""
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise ConfigurationError(
            f"zart.sleep_until({name!r}) needs a timezone-aware datetime, not {when!r}"
        )
    run = _run_for("zart.sleep_until")
    if run is None:
        delay = (when - datetime.now(when.tzinfo)).total_seconds()
        await asyncio.sleep(max(delay, 0.0))
        return
    await _sleep_until(run, name, when)


async def _sleep_until(run: RunState, name: str, when: datetime) -> None:
    position, record = await _take(run, name, StepKind.SLEEP)
    if record is not None and record.status is StepStatus.COMPLETED:
        return
    # The first run's wake-up time holds on every replay, whatever `when` says now.
    wake_at = record.wake_at if record is not None and record.wake_at is not None else when
    # Every write happens inside a busy region, so a sibling branch that suspends the run waits
    # for it to be stored before the run lets go of its lease.
    if wake_at > run.clock.now():
        suspend = run.must_suspend(wake_at)
        async with run.busy():
            if record is None:  # durable before waiting: a crash resumes at the same time
                timer = TimerKind.SLEEP if suspend else None
                await run.record_wait(name, StepKind.SLEEP, position, wake_at, timer)
            elif suspend:  # recorded in memory elsewhere; a timer must wake it now
                await run.ensure_timer(name, TimerKind.SLEEP, wake_at)
            if not suspend:
                await run.clock.sleep_until(wake_at)
        if suspend:
            await run.park()
    async with run.busy():
        await run.checkpoint(
            _done(run, name, StepKind.SLEEP, position, result=None, wake_at=wake_at)
        )


@overload
async def wait_for_event(
    name: str, timeout: timedelta | float | str | None = None, *, model: type[T]
) -> T: ...
@overload
async def wait_for_event(
    name: str, timeout: timedelta | float | str | None = None, *, model: None = None
) -> Any: ...
async def wait_for_event(
    name: str,
    timeout: timedelta | float | str | None = None,
    *,
    model: Any = None,
) -> Any:
    """Wait durably for the event ``name`` delivered by ``DurableScheduler.offer_event`` (or
    the HTTP API) and return its payload, validated into ``model`` when given.

    An event offered before the execution gets here is kept and returned at once. Raises
    :class:`~zart.EventTimeout` when ``timeout`` passes first; that outcome is stored, so
    replays raise it again.
    """
    check_path_segment(name, "event name")
    limit = None if timeout is None else parse_duration(timeout, name="event timeout")
    run = _run_for("zart.wait_for_event")
    if run is None:
        raise OutsideExecution(
            f"zart.wait_for_event({name!r}) was called outside a durable execution"
        )
    seconds = None if limit is None else limit.total_seconds()
    return await await_event(run, name, limit, model, lambda: EventTimeout(name, seconds))


async def await_event(
    run: RunState,
    name: str,
    limit: timedelta | None,
    model: Any,
    timed_out: Callable[[], BaseException],
) -> Any:
    """The body of :func:`wait_for_event`, also for Zart's own reserved events (a child's
    end, a message: :mod:`zart.runtime.children`, :mod:`zart.runtime.messages`), whose
    names no outside edge accepts. ``timed_out()`` makes the error a timeout raises."""
    position, record = await _take(run, name, StepKind.EVENT)
    seconds = None if limit is None else limit.total_seconds()
    if record is not None and record.status is StepStatus.COMPLETED:
        return _validated(run, name, record.result, model)
    if record is not None and record.status is StepStatus.FAILED:
        if isinstance(record.error, dict) and record.error.get("kind") == "invalid_event":
            raise run.failed(name, record.error, InvalidPayload(record.error.get("message")))
        raise run.failed(name, record.error, timed_out())
    now = run.clock.now()
    deadline = record.wake_at if record is not None else (None if limit is None else now + limit)
    # The model's JSON schema lets any process that offers the event refuse a misfit.
    schema = None if model is None else model_schema(model)
    async with run.busy():  # stored before any sibling's suspension lets go of the lease
        expired = None
        if deadline is not None and now >= deadline:
            expired = {"kind": "event_timeout", "timeout_seconds": seconds, "message": f"{name!r}"}
        event = await _take_event(run, name, position, deadline, now, model, schema, expired)
        if event is None and expired is not None:  # stored failed in the same transaction
            raise run.failed(name, expired, timed_out())
        if event is None and record is None:
            timer = TimerKind.EVENT_TIMEOUT
            await run.record_wait(name, StepKind.EVENT, position, deadline, timer, schema)
    if event is not None:
        return _validated(run, name, event.payload, model)
    run.awaited_events.add(name)
    await run.park()


async def _take_event(
    run: RunState,
    name: str,
    position: int,
    deadline: datetime | None,
    now: datetime,
    model: Any,
    schema: Any,
    expired: Any = None,
) -> EventRecord | None:
    """Consume the delivered event ``name`` and complete the wait in one transaction (its
    deadline timer, if any, is called off); ``None`` when the event has not arrived. A
    payload ``model`` refuses is stored as the wait's failure (retry-step re-opens it), and so,
    with ``expired``, is a wait past its deadline whose event has not arrived."""

    def refusal(payload: Any) -> Any:
        try:
            _validated(run, name, payload, model)
        except InvalidPayload as exc:
            return {"kind": "invalid_event", "message": str(exc)}
        return None

    return await run.runtime.write(
        events_repo.take_event,
        run.lease,
        run_id=run.execution.run_id,
        name=name,
        position=position,
        deadline=deadline is not None,
        now=now,
        refusal=None if model is None else refusal,
        event_schema=schema,
        expired=expired,
        wake_at=deadline,
    )


async def _take(run: RunState, name: str, kind: StepKind) -> tuple[int, Any]:
    if run.suspending:
        await run.park()
    if not isinstance(name, str) or not name:
        raise ConfigurationError("a wait needs a non-empty name")
    return run.take_name(name, kind)


def _done(
    run: RunState,
    name: str,
    kind: StepKind,
    position: int,
    *,
    result: Any,
    wake_at: datetime | None = None,
) -> steps_repo.StepOutcome:
    return run.outcome(
        name,
        kind,
        StepStatus.COMPLETED,
        position,
        result=result,
        wake_at=wake_at,
        completed_at=run.clock.now(),
    )


def _validated(run: RunState, name: str, payload: Any, model: Any) -> Any:
    check_readable(payload)  # a planted row the engine could not read
    if model is None:
        return payload
    try:
        return from_json(payload, model)
    except ValidationError as exc:
        error = InvalidPayload(
            f"event {name!r} does not fit {getattr(model, '__name__', model)}: {exc}"
        )
        raw = {"kind": "invalid_event", "message": str(error)}
        raise run.failed(name, raw, error) from exc
