"""Running one claimed execution: replay recorded outcomes, run new steps, checkpoint them,
and record how the run ended.

The worker hands a claimed execution and the outcomes already recorded for its run (loaded by
the claim, one query) to :func:`execute`. The handler coroutine then runs in-process from the
top (:mod:`zart.runtime.run`): a step whose outcome is recorded returns it from memory; a new
step runs, and its outcome is written in one fenced statement before the handler continues.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, Literal

from zart import metrics, tracing
from zart.errors import ExecutionDeadlineExceeded, LeaseLost, SerializationError, ZartError
from zart.logs import bound, log, logger
from zart.models import ExecutionStatus
from zart.outages import is_transient
from zart.repositories import leases
from zart.repositories.records import ClaimedExecution, ExecutionRecord, StepRecord
from zart.runtime.crashes import DEFAULT_MAX_CLAIMS, end_crash_loop
from zart.runtime.divergence import hold_diverged
from zart.runtime.outcomes import DeadlineExceeded, ExecutionFailure, HandlerFailed, StepFailed
from zart.runtime.registry import NO_INPUT, DurableHandler
from zart.runtime.run import RunState, current_run
from zart.runtime.runtime import (
    DEFAULT_INLINE_WAIT_LIMIT,
    DEFAULT_MAX_PAYLOAD_BYTES,
    CheckpointFailed,
    Runtime,
    Suspended,
)
from zart.serialization import check_size, encode_exception

__all__ = [
    "DEFAULT_INLINE_WAIT_LIMIT",
    "DEFAULT_MAX_CLAIMS",
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "CheckpointFailed",
    "Runtime",
    "Suspended",
    "execute",
]


async def execute(
    runtime: Runtime,
    handler: DurableHandler[..., Any],
    claimed: ClaimedExecution,
    outcomes: dict[str, StepRecord],
    *,
    max_claims: int = DEFAULT_MAX_CLAIMS,
) -> ExecutionRecord | None:
    """Run a claimed execution's current run to its end (or until its lease is lost).

    Returns the finished execution, or ``None`` when this worker no longer owns it (lease lost,
    checkpoint failed): then another claim will replay it. ``max_claims``: the worker's limit
    of claims in a row ending without a report, for a handler that sets none; at it, the
    execution fails as a crash loop without running (:mod:`zart.runtime.crashes`).

    The pass is one span (:func:`zart.tracing.run_span`, its parent the start's stored trace
    context) and every action line it logs carries its ``execution_id`` and ``task_name``.
    """
    execution = claimed.execution
    with (
        bound(execution_id=execution.execution_id, task_name=handler.name),
        tracing.run_span(
            execution.execution_id, handler.name, execution.trace_context, execution.claim_count
        ) as span,
    ):
        record = await _execute(runtime, handler, claimed, outcomes, max_claims)
        if record is None:  # another claim replays it: not an end
            span.ended("released")
        else:
            error = record.error.get("message") if isinstance(record.error, dict) else None
            span.ended(record.status.value, str(error) if record.error is not None else None)
        return record


async def _execute(
    runtime: Runtime,
    handler: DurableHandler[..., Any],
    claimed: ClaimedExecution,
    outcomes: dict[str, StepRecord],
    max_claims: int,
) -> ExecutionRecord | None:
    execution = claimed.execution
    if execution.deadline_at is None and handler.timeout is not None:
        # Started by name where the handler is not registered: its timeout applies from the
        # start all the same.
        execution = dataclasses.replace(
            execution, deadline_at=execution.created_at + handler.timeout
        )
    state = RunState(runtime, claimed.lease, execution, outcomes)
    # The subject of the lines logged below (the run's bound fields say the same; named
    # here as they are where a line is logged outside the run's binding).
    fields: dict[str, Any] = {"execution_id": execution.execution_id, "task_name": handler.name}
    crashed = execution.crashed_claims
    limit = handler.max_claims or max_claims
    if crashed:
        log(
            "execution_taken_over",
            f"execution taken over: {crashed} claim(s) in a row ended without a report"
            f" (max_claims {limit})",
            level=30,
            claim_count=execution.claim_count,
            **fields,
        )
        state.crash_pending = True
    token = current_run.set(state)
    try:
        if crashed >= limit:
            metrics.crash_loop(handler.name)
            result: _Outcome = _Failed(await end_crash_loop(state, limit))
        else:
            result = await _held_if_diverged(state, await _run_handler(state, handler))
    except LeaseLost as exc:
        metrics.lease_lost(handler.name)
        log("lease_lost", f"execution stopped on this worker: {exc}", **fields)
        return None
    except CheckpointFailed as exc:
        await _hand_back(state, exc, fields, action="checkpoint_failed")
        return None
    except Exception as exc:
        if is_transient(exc):  # a database outage met outside a checkpoint
            await _hand_back(state, exc, fields, action="checkpoint_failed")
            return None
        # Anything else escaping the run (a value the database refused, a bug) would end the
        # task and leave the execution running, to be claimed and to crash again for ever:
        # end it as failed instead, with the error stored.
        result = _Failed(_error("internal_error", exc))
    finally:
        current_run.reset(token)
    try:
        return await _finish(state, result, claimed.execution)
    except LeaseLost as exc:
        metrics.lease_lost(handler.name)
        log("lease_lost", f"execution finished, but its lease was lost: {exc}", **fields)
        return None
    except Exception as exc:
        if is_transient(exc):  # a dropped connection, a restarting server: nothing recorded
            # (or recorded, its answer lost): the replay finds every step stored and records
            # the end, or the hand-back finds the end recorded already.
            await _hand_back(state, exc, fields, action="finish_failed")
            return None
        # The database refused this end (an unstorable result...).
        log("finish_failed", f"could not record the end of the run: {exc}", level=30, **fields)
        ending = _Failed(_error("internal_error", exc))  # an error is always storable
        return await _finish(state, ending, claimed.execution)


async def _held_if_diverged(state: RunState, result: _Outcome) -> _Outcome:
    """A pass that left its recorded history (or completed before reaching all of it) is held
    for an operator instead of ending (:mod:`zart.runtime.divergence`). A failure is not
    compared with the history: it ends the execution as it would have."""
    if state.diverged is None and isinstance(result, _Completed):
        unreached = state.path.unreached()
        if unreached is not None:
            state.diverge(unreached)
    if state.diverged is None:
        return result
    await hold_diverged(state)
    return _Waiting(frozenset())


async def _hand_back(
    state: RunState, exc: BaseException, fields: dict[str, Any], *, action: str
) -> None:
    """A write of the run failed for an outage: never the run's failure. Hand the execution
    back as soon as the database answers (:meth:`Runtime.hand_back`); the step in flight, whose
    outcome is not stored, runs again on replay (at-least-once), and every stored one is not."""
    runtime = state.runtime
    runtime.outage.failed(f"run {state.execution.execution_id}", exc, action=action)
    log(action, f"execution stopped on this worker: {exc}; handing it back", **fields)
    try:
        await runtime.hand_back(state.lease, state.execution.task_name)
    finally:
        runtime.outage.forget(f"run {state.execution.execution_id}")


@dataclass(frozen=True, slots=True)
class _Completed:
    result: Any


@dataclass(frozen=True, slots=True)
class _Failed:
    error: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Waiting:
    """The handler unwound to wait durably."""

    awaited_events: frozenset[str]


_Outcome = _Completed | _Failed | _Waiting


async def _run_handler(state: RunState, handler: DurableHandler[..., Any]) -> _Outcome:
    execution = state.execution
    try:
        argument = handler.input_from(execution.payload)
    except ZartError as exc:
        return _Failed(_error("invalid_payload", exc))
    try:
        value = await _call_within_deadline(state, handler, argument)
        if state.suspending:  # gather(return_exceptions=True) handed the signal back as a value
            raise Suspended()
    except (LeaseLost, CheckpointFailed):
        raise
    except Suspended:
        return _Waiting(frozenset(state.awaited_events))
    except BaseExceptionGroup as group:  # asyncio.TaskGroup branches
        _, rest = group.split(Suspended)
        if rest is None or state.diverged is not None:
            return _Waiting(frozenset(state.awaited_events))
        if not isinstance(rest, Exception):
            raise rest from None  # a BaseException other than our signal: not ours to handle
        return await _recover(state, handler, argument, _classify(state, rest))
    except Exception as exc:
        if state.suspending:  # a branch parked; whatever else the handler did, it waits
            return _Waiting(frozenset(state.awaited_events))
        failure = _classify(state, exc)
        return await _recover(state, handler, argument, failure)
    except (SystemExit, GeneratorExit) as exc:  # sys.exit() in a handler: its failure, not
        return _Failed(_error("handler_failed", exc))  # the worker's (which must go on)
    return _completed(state, handler, value)


async def _call_within_deadline(
    state: RunState, handler: DurableHandler[..., Any], argument: Any
) -> Any:
    deadline = state.execution.deadline_at
    if deadline is None:
        return await handler.call_with(argument)
    remaining = (deadline - state.clock.now()).total_seconds()
    if remaining <= 0:
        raise ExecutionDeadlineExceeded(state.execution.execution_id)
    try:
        async with asyncio.timeout(remaining) as scope:
            return await handler.call_with(argument)
    except TimeoutError:
        if scope.expired():
            raise ExecutionDeadlineExceeded(state.execution.execution_id) from None
        raise


def _classify(state: RunState, error: BaseException) -> ExecutionFailure:
    if isinstance(error, ExecutionDeadlineExceeded):
        return DeadlineExceeded(error)
    step_failure = state.failure_of(error)
    if step_failure is not None:
        step, raw = step_failure
        return StepFailed(step=step, error=error, raw=raw)
    return HandlerFailed(error)


async def _recover(
    state: RunState, handler: DurableHandler[..., Any], argument: Any, failure: ExecutionFailure
) -> _Completed | _Failed:
    error = _failure_error(failure)
    if handler.on_failure is None:
        return _Failed(error)
    try:
        value = handler.on_failure(None if argument is NO_INPUT else argument, failure)
        if asyncio.iscoroutine(value):
            value = await value
    except (LeaseLost, CheckpointFailed):
        raise
    except Exception as exc:
        if exc is failure.error:  # on_failure declined by re-raising: the failure stands
            return _Failed(error)
        return _Failed({**_error("on_failure_failed", exc), "original": error})
    return _completed(state, handler, value)


def _completed(
    state: RunState, handler: DurableHandler[..., Any], value: Any
) -> _Completed | _Failed:
    try:
        result = handler.result_to_json(value)
        check_size(result, state.runtime.max_payload_bytes, name="result")
    except SerializationError as exc:
        return _Failed(_error("unserializable_result", exc))
    return _Completed(result)


def _failure_error(failure: ExecutionFailure) -> dict[str, Any]:
    if isinstance(failure, StepFailed):
        return {**_error("step_failed", failure.error), "step": failure.step, "raw": failure.raw}
    if isinstance(failure, DeadlineExceeded):
        return _error("deadline_exceeded", failure.error)
    return _error("handler_failed", failure.error)


def _error(kind: str, error: BaseException) -> dict[str, Any]:
    encoded: Any = encode_exception(error)  # its message is storable (NUL, surrogates escaped)
    return {"kind": kind, "message": encoded["message"], "error": encoded}


async def _finish(state: RunState, outcome: _Outcome, claimed: ExecutionRecord) -> ExecutionRecord:
    """Record the run's end. ``claimed``: the execution as the claim returned it (the run's
    ``state.execution`` may carry a deadline computed from the handler, not stored)."""
    fields: dict[str, Any] = {"execution_id": claimed.execution_id, "task_name": claimed.task_name}
    if isinstance(outcome, _Waiting):
        # One transaction with its NOTIFY: idle workers re-plan their next wake-up.
        record = await state.runtime.store.run(
            leases.suspend_execution,
            state.lease,
            run_id=state.execution.run_id,
            now=state.clock.now(),
            awaited_events=sorted(outcome.awaited_events),
            channel=state.runtime.channel,
        )
        metrics.execution_suspended(record.task_name)
        log("execution_suspended", "execution waits", wake_at=record.claimable_at, **fields)
        return record
    completed = isinstance(outcome, _Completed)
    status: Literal[ExecutionStatus.COMPLETED, ExecutionStatus.FAILED] = (
        ExecutionStatus.COMPLETED if completed else ExecutionStatus.FAILED
    )
    result = outcome.result if isinstance(outcome, _Completed) else None
    error = outcome.error if isinstance(outcome, _Failed) else None
    # One statement in autocommit on PostgreSQL, maybe shared with the ends of other runs.
    record = await state.runtime.finish(state.lease, claimed, status, result, error)
    metrics.execution_finished(record.task_name, status.value)
    if isinstance(outcome, _Failed):
        log("execution_failed", f"execution failed: {outcome.error['message']}", **fields)
    elif logger.isEnabledFor(logging.INFO):  # not even the call when filtered out
        log("execution_completed", "execution completed", **fields)
    return record
