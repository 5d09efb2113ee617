"""A step inside a run: replay its stored outcome, or run its attempts — time limits,
retries with back-off (in memory or suspended), transactional attempts — checkpointing each.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime, timedelta
from typing import Any

from zart import metrics, tracing
from zart.errors import NonDeterministicReplay, RetryExhausted, SerializationError, StepTimedOut
from zart.logs import log, logger
from zart.models import AttemptStatus, StepKind, StepStatus, TimerKind
from zart.outages import is_transient
from zart.repositories import steps as steps_repo
from zart.repositories.records import AttemptOutcome, StepRecord
from zart.runtime.crashes import crashed_attempt
from zart.runtime.definitions import StepDefinition
from zart.runtime.returns import check_result
from zart.runtime.run import RunState, StepScope, current_step
from zart.runtime.runtime import CheckpointFailed
from zart.runtime.transactions import StepTransaction, current_session, discard
from zart.serialization import decode, decode_exception, encode_exception


async def run_step(
    state: RunState,
    definition: StepDefinition,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    name: str,
) -> Any:
    """A step call inside the run ``state``: its recorded outcome (a value, or the stored
    failure raised again), or its attempts run now."""
    if state.suspending:
        await state.park()
    position, record = state.take_name(name, StepKind.STEP)
    if record is not None:
        if record.status is StepStatus.COMPLETED:
            value = decode(record.result)
            try:
                check_result(definition.fn, name, record.position, value)
            except NonDeterministicReplay as drift:
                raise state.diverge(drift) from None
            return value
        if record.status is StepStatus.FAILED:
            raise state.failed(name, record.error, stored_failure(name, record.error))
    if state.runtime.pause_rules.rules:  # no rules, no cost
        await state.hold_if_paused(name)
    async with state.busy():
        return await _StepAttempts(state, definition, args, kwargs, name, position, record).run()


def stored_failure(name: str, error: Any) -> BaseException:
    """The exception a recorded step failure raises again on replay."""
    kind = error.get("kind") if isinstance(error, dict) else None
    if kind == "retry_exhausted":
        return RetryExhausted(name, int(error["attempts"]), decode_exception(error["last_error"]))
    if kind == "timed_out":
        return StepTimedOut(name, error.get("timeout_seconds"))
    return decode_exception(error["error"] if kind == "business" else error)


def _jittered(delay: timedelta, exponential: bool) -> timedelta:
    # Spread exponential back-offs by up to 20% so retries of many executions do not align.
    if not exponential or delay <= timedelta(0):
        return delay
    return delay * random.uniform(0.8, 1.0)


class _StepAttempts:
    """The attempts of one step: run, time out, retry with back-off, checkpoint each one."""

    def __init__(
        self,
        state: RunState,
        definition: StepDefinition,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str,
        position: int,
        record: StepRecord | None,
    ) -> None:
        self.state = state
        self.definition = definition
        self.args = args
        self.kwargs = kwargs
        self.name = name
        self.position = position
        self.attempt = 0 if record is None else record.attempts
        self.deadline = None if record is None else record.deadline_at
        self.wake_at = None if record is None else record.wake_at

    def _outcome(self, status: StepStatus, **values: Any) -> steps_repo.StepOutcome:
        return self.state.outcome(
            self.name,
            StepKind.STEP,
            status,
            self.position,
            attempts=self.attempt + 1,
            deadline_at=self.deadline,
            **values,
        )

    def _limit(self, now: datetime) -> datetime | None:
        """When the attempt starting at ``now`` must be over: the step's deadline (global scope)
        or a fresh one (per attempt), never past the execution's deadline."""
        timeout = self.definition.timeout
        if timeout is not None and self.definition.timeout_scope == "global":
            if self.deadline is None:
                self.deadline = now + timeout
            limit: datetime | None = self.deadline
        elif timeout is not None:
            limit = now + timeout
        else:
            limit = None
        execution_deadline = self.state.execution.deadline_at
        if execution_deadline is not None and (limit is None or execution_deadline < limit):
            limit = execution_deadline
        return limit

    async def _wait_until(self, wake_at: datetime, *, suspend: bool, timer_recorded: bool) -> None:
        """Wait for a retry: in memory when short, else suspend (a timer wakes the run)."""
        if suspend:
            if not timer_recorded:
                await self.state.ensure_timer(self.name, TimerKind.RETRY, wake_at)
            await self.state.park(holding=1)  # this branch is busy in its own step
        await self.state.clock.sleep_until(wake_at)

    async def run(self) -> Any:
        if self.state.crash_pending and self.wake_at is None:
            # The run was taken over: this step, the first run anew, was the one in flight
            # when the last claim's worker died (a deterministic replay reaches it again).
            self.state.crash_pending = False
            await self._crashed()
        if self.wake_at is not None:  # resuming a retry back-off
            suspend = self.state.must_suspend(self.wake_at)
            # Whether a timer was stored with the back-off is not known here; one more is
            # harmless (timers fire together at the claim).
            await self._wait_until(self.wake_at, suspend=suspend, timer_recorded=False)
        while True:
            started = self.state.clock.now()
            limit = self._limit(started)
            if limit is not None and started >= limit:
                raise await self._timed_out(started, started, ran=False)
            transaction = await self._begin_transaction()
            token = current_step.set(
                StepScope(self.name, self.attempt, self.definition.retry.max_retries)
            )
            session_token = None if transaction is None else transaction.activate()
            try:
                with tracing.step_span(
                    self.state.execution.execution_id,
                    self.state.execution.task_name,
                    self.name,
                    self.attempt,
                ):
                    value = await self._attempt(limit, started)
                if transaction is not None:
                    await transaction.end_body()
            except _AttemptTimedOut:
                await discard(transaction)
                raise await self._timed_out(started, self.state.clock.now(), ran=True) from None
            except Exception as error:  # anything the body raises is the step's own error
                await discard(transaction)
                if not await self._failed_attempt(error, started):
                    raise
                continue
            except BaseException:  # cancelled: its writes roll back
                await discard(transaction)
                raise
            finally:
                if session_token is not None:
                    current_session.reset(session_token)
                current_step.reset(token)
            return await self._succeeded(value, started, transaction)

    async def _crashed(self) -> None:
        """Record the attempt in flight at the crash as ``crashed`` (it counts as a try): the
        step stays ``running`` until this try's outcome replaces it."""
        attempt = crashed_attempt(self.state, self.name, self.attempt)
        self._count("crashed", None)
        await self.state.checkpoint(self._outcome(StepStatus.RUNNING, error=attempt.error), attempt)
        self.attempt += 1

    async def _begin_transaction(self) -> StepTransaction | None:
        """A transactional step's attempt transaction (``None`` for a plain step)."""
        if not self.definition.transactional:
            return None
        transaction = StepTransaction(self.state.runtime.engine)
        try:
            await transaction.begin()
        except Exception as exc:
            if is_transient(exc):
                raise CheckpointFailed(f"step transaction could not begin: {exc}") from exc
            raise
        return transaction

    async def _attempt(self, limit: datetime | None, started: datetime) -> Any:
        if limit is None:
            return await self.definition.invoke(self.args, self.kwargs)
        seconds = max((limit - started).total_seconds(), 0.0)
        try:
            async with asyncio.timeout(seconds) as scope:
                return await self.definition.invoke(self.args, self.kwargs)
        except TimeoutError:
            if scope.expired():
                raise _AttemptTimedOut() from None
            raise

    async def _succeeded(
        self, value: Any, started: datetime, transaction: StepTransaction | None = None
    ) -> Any:
        try:
            data = self.state.runtime.encode_checked(value)  # before anything is written
        except SerializationError as error:
            await discard(transaction)
            raw = {"kind": "unserializable_result", "message": str(error)}
            raise self.state.failed(self.name, raw, error) from None
        now = self.state.clock.now()
        outcome = self._outcome(StepStatus.COMPLETED, result=data, completed_at=now)
        attempt = AttemptOutcome(self.attempt, AttemptStatus.SUCCEEDED, started, now)
        if transaction is None:
            await self.state.checkpoint(outcome, attempt)
        else:
            await self.state.checkpoint_in(transaction, outcome, attempt)
        self._count("succeeded", (now - started).total_seconds())
        if logger.isEnabledFor(logging.INFO):  # not even the message when filtered out
            log("step_succeeded", f"step {self.name!r} succeeded", **self._fields())
        return value

    async def _failed_attempt(self, error: Exception, started: datetime) -> bool:
        """Record a failed attempt. True: a retry was scheduled (and waited for); False: the
        step failed for good and ``error`` (or RetryExhausted) must be raised."""
        now = self.state.clock.now()
        encoded = encode_exception(error)
        attempt = AttemptOutcome(self.attempt, AttemptStatus.FAILED, started, now, error=encoded)
        policy = self.definition.retry
        if policy.allows(self.attempt + 1):
            delay = _jittered(
                policy.delay_before(self.attempt + 1), policy.backoff == "exponential"
            )
            wake_at = now + delay
            suspend = self.state.must_suspend(wake_at)
            await self.state.checkpoint(
                self._outcome(StepStatus.WAITING, error=encoded, wake_at=wake_at),
                attempt,
                timer=TimerKind.RETRY if suspend else None,
            )
            self._count("retried", (now - started).total_seconds())
            log("step_retry_scheduled", f"step {self.name!r} failed; retrying", **self._fields())
            self.attempt += 1
            await self._wait_until(wake_at, suspend=suspend, timer_recorded=True)
            return True
        if policy.max_retries > 0:
            raw = {
                "kind": "retry_exhausted",
                "attempts": self.attempt + 1,
                "last_error": encoded,
                "message": encoded["message"],  # type: ignore[index,call-overload]
            }
            failure: BaseException = RetryExhausted(self.name, self.attempt + 1, error)
        else:
            raw = {"kind": "business", "error": encoded, "message": encoded["message"]}  # type: ignore[index,call-overload]
            failure = error
        await self.state.checkpoint(
            self._outcome(StepStatus.FAILED, error=raw, completed_at=now), attempt
        )
        self._count("failed", (now - started).total_seconds())
        log("step_failed", f"step {self.name!r} failed: {error}", **self._fields())
        self.state.failed(self.name, raw, failure)
        if failure is error:
            return False
        raise failure from error

    async def _timed_out(self, started: datetime, now: datetime, *, ran: bool) -> BaseException:
        timeout = self.definition.timeout
        seconds = None if timeout is None else timeout.total_seconds()
        raw = {
            "kind": "timed_out",
            "timeout_seconds": seconds,
            "message": f"step {self.name!r} timed out",
        }
        attempt = (
            AttemptOutcome(self.attempt, AttemptStatus.TIMED_OUT, started, now, error=raw)
            if ran
            else None
        )
        await self.state.checkpoint(
            self._outcome(StepStatus.FAILED, error=raw, completed_at=now), attempt
        )
        if ran:
            self._count("timed_out", (now - started).total_seconds())
        log("step_timed_out", f"step {self.name!r} timed out", **self._fields())
        return self.state.failed(self.name, raw, StepTimedOut(self.name, seconds))

    def _count(self, outcome: str, seconds: float | None) -> None:
        """Count this attempt (:mod:`zart.metrics`) under the step's declared name: a name
        filled from arguments would make one series per call."""
        metrics.step_attempt(self.state.execution.task_name, self.definition.name, outcome, seconds)

    def _fields(self) -> dict[str, Any]:
        return {
            "execution_id": self.state.execution.execution_id,
            "task_name": self.state.execution.task_name,
            "step_name": self.name,
            "attempt": self.attempt,
        }


class _AttemptTimedOut(Exception):
    """The attempt ran past its time limit (recorded so on its span)."""

    def __init__(self) -> None:
        super().__init__("the step attempt timed out")
