"""Running one claimed execution: replay recorded outcomes, run new steps, checkpoint them.

The worker hands a claimed execution and the outcomes already recorded for its run (loaded in
the claim's transaction, one query) to :func:`execute`. The handler coroutine then runs
in-process from the top: a step whose outcome is recorded returns it from memory; a new step
runs, and its outcome is written in one fenced statement before the handler continues.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, NoReturn

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zart.clock import SYSTEM_CLOCK, Clock
from zart.database import DriverConnections, SQLiteWriter
from zart.errors import (
    DuplicateStepName,
    ExecutionDeadlineExceeded,
    LeaseLost,
    NonDeterministicReplay,
    RetryExhausted,
    SerializationError,
    StepTimedOut,
    ZartError,
)
from zart.logs import log, logger
from zart.models import AttemptStatus, ExecutionStatus, StepKind, StepStatus, TimerKind
from zart.repositories import executions as executions_repo
from zart.repositories import steps as steps_repo
from zart.repositories import timers as timers_repo
from zart.repositories import wakeups
from zart.repositories.records import (
    AttemptOutcome,
    ClaimedExecution,
    ExecutionRecord,
    Lease,
    StepRecord,
)
from zart.runtime.checkpoints import (
    Checkpoint,
    DriverBatcher,
    Finish,
    GroupCommitter,
    checkpoint_batcher,
    finish_batcher,
    write_one,
)
from zart.runtime.context import StepScope, current_run, current_step
from zart.runtime.outcomes import DeadlineExceeded, ExecutionFailure, HandlerFailed, StepFailed
from zart.runtime.pauses import PauseRules
from zart.runtime.registry import NO_INPUT, DurableHandler
from zart.runtime.steps import StepCall, StepDefinition
from zart.runtime.transactions import StepTransaction, current_session, discard
from zart.serialization import check_size, decode, decode_exception, encode, encode_exception

DEFAULT_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024

#: Waits (sleeps, retry back-offs) at most this long stay in memory; longer ones suspend.
DEFAULT_INLINE_WAIT_LIMIT = timedelta(seconds=5)


class Suspended(BaseException):
    """Unwinds a handler that waits durably (a long sleep, an event not yet delivered, a long
    retry back-off). A BaseException, so ``except Exception`` in user code does not stop it.
    The worker records the execution as ``waiting`` and drops the coroutine."""


class CheckpointFailed(ZartError):
    """A checkpoint could not be written (the database is unreachable). The run stops; its
    lease expires and another claim replays it."""


@dataclass
class Runtime:
    """What every run on a worker shares: the engine, the clock and the limits."""

    engine: AsyncEngine
    clock: Clock = SYSTEM_CLOCK
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    inline_wait_limit: timedelta = DEFAULT_INLINE_WAIT_LIMIT
    #: NOTIFY channel of this deployment's wake-ups (see zart.repositories.wakeups).
    channel: str = wakeups.CHANNEL
    #: Active pause rules, checked in memory before a step starts (see zart.runtime.pauses).
    pause_rules: PauseRules = field(default_factory=PauseRules)
    _group: GroupCommitter | None = field(default=None, repr=False)
    #: PostgreSQL, while a worker runs: driver connections for the hot statements.
    _driver: DriverConnections | None = field(default=None, repr=False)
    _driver_group: DriverBatcher[Checkpoint, StepRecord] | None = field(default=None, repr=False)
    _finishes: DriverBatcher[Finish, ExecutionRecord] | None = field(default=None, repr=False)
    #: SQLite, while a worker runs: the writer connection in a thread of its own.
    _sqlite_writer: SQLiteWriter | None = field(default=None, repr=False)
    _driver_users: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if self.engine.dialect.name != "postgresql":
            self._group = GroupCommitter(
                self.transaction, self.clock.now, sqlite_writer=lambda: self._sqlite_writer
            )

    def open_driver(self) -> None:
        """A worker starts: keep driver connections for its hot statements (checkpoints,
        claims, finishes) until the last worker of this runtime stops: a few asyncpg ones on
        PostgreSQL, SQLite's writer connection and its thread on SQLite."""
        self._driver_users += 1
        if self.engine.dialect.name == "postgresql":
            if self._driver is None:
                self._driver = DriverConnections(self.engine)
                self._driver_group = checkpoint_batcher(self._driver, self.clock.now)
                self._finishes = finish_batcher(self._driver, self.clock.now)
        elif self._sqlite_writer is None:
            self._sqlite_writer = SQLiteWriter(self.engine)

    async def close_driver(self) -> None:
        """A worker stopped (see :meth:`open_driver`)."""
        if self._driver_users == 0:
            return
        self._driver_users -= 1
        if self._driver_users > 0:
            return
        driver, self._driver = self._driver, None
        self._driver_group = self._finishes = None
        if driver is not None:
            await driver.close()
        writer, self._sqlite_writer = self._sqlite_writer, None
        if writer is not None:
            await writer.close()

    @property
    def sqlite_writer(self) -> SQLiteWriter | None:
        return self._sqlite_writer

    @property
    def driver(self) -> DriverConnections | None:
        return self._driver

    async def finish(
        self,
        lease: Lease,
        execution: ExecutionRecord,
        status: Literal[ExecutionStatus.COMPLETED, ExecutionStatus.FAILED],
        result: Any,
        error: Any,
    ) -> ExecutionRecord | None:
        """PostgreSQL, while a worker runs: record a run's end, grouped with the ends of
        other runs arriving meanwhile (one statement); ``None`` elsewhere (the caller writes
        it). ``execution``: the record the claim behind ``lease`` returned, of which the
        finished one is made (:func:`executions_repo.finish_executions_driver`)."""
        if self._finishes is None:
            return None
        return await self._finishes.submit((lease, execution, status, result, error))

    async def write_checkpoint(
        self,
        lease: Lease,
        outcome: steps_repo.StepOutcome,
        attempt: AttemptOutcome | None,
        timer: TimerKind | None,
    ) -> StepRecord:
        """Store a step's outcome, fenced by ``lease`` (see :mod:`zart.runtime.checkpoints`)."""
        if self._group is not None:
            return await self._group.write(lease, outcome, attempt, timer)
        now = self.clock.now()
        if self._driver is not None:
            try:
                if timer is None or outcome.wake_at is None:
                    if self._driver_group is not None:
                        # One fenced statement in autocommit, shared with the checkpoints of
                        # other runs that arrive meanwhile (group commit).
                        return await self._driver_group.submit((lease, outcome, attempt))
                    async with self._driver.connection() as session:
                        return await steps_repo.record_step_outcome_driver(
                            session, lease, outcome, attempt=attempt, now=now
                        )
                async with self._driver.transaction() as session:  # the wait and its timer
                    record = await steps_repo.record_step_outcome_driver(
                        session, lease, outcome, attempt=attempt, now=now
                    )
                    await timers_repo.create_timer_driver(
                        session,
                        execution_id=lease.execution_id,
                        run_id=outcome.run_id,
                        name=outcome.name,
                        kind=timer,
                        fire_at=outcome.wake_at,
                        now=now,
                    )
                    return record
            except (SQLAlchemyError, OSError) as exc:
                raise CheckpointFailed(f"checkpoint could not be written: {exc}") from exc
        raise _no_worker()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A transaction for a write of several statements (a wait and its timer)."""
        try:
            async with self.engine.begin() as conn:
                yield conn
        except (SQLAlchemyError, OSError) as exc:
            raise CheckpointFailed(f"checkpoint could not be written: {exc}") from exc

    def encode_checked(self, value: Any, name: str = "result") -> Any:
        data = encode(value, name=name)
        check_size(data, self.max_payload_bytes, name=name)
        return data


@dataclass
class RunState:
    """One pass of one run through its handler, on one worker."""

    runtime: Runtime
    lease: Lease
    execution: ExecutionRecord
    outcomes: dict[str, StepRecord]
    used_names: set[str] = field(default_factory=set)
    next_position: int = 0
    # Exceptions a step raised to the handler, by identity: (step name, stored JSON). Tells a
    # step's failure from the handler's own error and from infrastructure errors.
    step_failures: dict[int, tuple[str, Any, BaseException]] = field(default_factory=dict)
    # Suspension: branches busy in a step (or a short wait), whether the run is unwinding to
    # wait durably, and the events it waits for.
    active: int = 0
    parked_holding: int = 0  # busy regions held by branches already parked
    suspending: bool = False
    awaited_events: set[str] = field(default_factory=set)
    # Set when a busy region ends, for parked branches; made by the first park() only (most
    # runs never park, and an Event per run was a measurable share of a resume's CPU).
    _changed: asyncio.Event | None = None

    @asynccontextmanager
    async def busy(self) -> AsyncIterator[None]:
        """Mark a branch busy (running a step, waiting briefly). No new work starts once the
        run is suspending: the branch parks instead."""
        if self.suspending:
            await self.park()
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            if self._changed is not None:
                self._changed.set()

    async def park(self, *, holding: int = 0) -> NoReturn:
        """Unwind this branch to wait durably, once no other branch is busy, so every step in
        flight stores its outcome before the run lets go of its lease. Every branch that meets
        a suspending run parks here too: no branch unwinds to the top early. ``holding``: busy
        regions the caller itself is inside."""
        self.suspending = True
        self.parked_holding += holding
        if self._changed is None:
            self._changed = asyncio.Event()
        while True:
            self._changed.clear()
            # Busy regions of parked branches do not count: they will never end on their own.
            if self.active - self.parked_holding <= 0:
                raise Suspended()
            await self._changed.wait()

    def outcome(
        self, name: str, kind: StepKind, status: StepStatus, position: int, **values: Any
    ) -> steps_repo.StepOutcome:
        """What to store for step ``name`` of this run (``attempts`` defaults to 1)."""
        values.setdefault("attempts", 1)
        return steps_repo.StepOutcome(
            run_id=self.execution.run_id,
            name=name,
            kind=kind,
            status=status,
            position=position,
            **values,
        )

    async def record_wait(
        self,
        name: str,
        kind: StepKind,
        position: int,
        wake_at: datetime | None,
        timer: TimerKind | None,
    ) -> StepRecord:
        """Store that step ``name`` waits (until ``wake_at``), with a timer when the run will
        suspend rather than wait in memory."""
        outcome = self.outcome(
            name, kind, StepStatus.WAITING, position, attempts=0, wake_at=wake_at
        )
        return await self.checkpoint(outcome, timer=timer)

    async def ensure_timer(self, name: str, kind: TimerKind, wake_at: datetime) -> None:
        """A timer for a wait recorded earlier without one (it waited in memory in a process
        with a larger ``inline_wait_limit``) that must now suspend: something must wake it."""
        now = self.clock.now()
        async with self.runtime.transaction() as conn:
            await timers_repo.create_timer(
                conn,
                execution_id=self.execution.execution_id,
                run_id=self.execution.run_id,
                name=name,
                kind=kind,
                fire_at=wake_at,
                now=now,
            )

    def must_suspend(self, wake_at: datetime) -> bool:
        """Whether waiting until ``wake_at`` is long enough to suspend instead of sleeping."""
        return wake_at - self.clock.now() > self.runtime.inline_wait_limit

    @property
    def clock(self) -> Clock:
        return self.runtime.clock

    def take_name(self, name: str, kind: StepKind) -> tuple[int, StepRecord | None]:
        """Reserve ``name`` for this pass; its position and recorded outcome, if any."""
        if name in self.used_names:
            raise DuplicateStepName(name)
        self.used_names.add(name)
        position = self.next_position
        self.next_position += 1
        record = self.outcomes.get(name)
        if record is not None and record.kind is not kind:
            raise NonDeterministicReplay(
                f"{name!r} was recorded as a {record.kind.value} in this run but is now used as"
                f" a {kind.value}; the handler's code changed under a running execution"
            )
        return position, record

    async def checkpoint(
        self,
        outcome: steps_repo.StepOutcome,
        attempt: AttemptOutcome | None = None,
        *,
        timer: TimerKind | None = None,
    ) -> StepRecord:
        """Store a step's outcome (fenced by the lease). With ``timer``, also a durable wake-up
        at ``outcome.wake_at``, in the same transaction."""
        record = await self.runtime.write_checkpoint(self.lease, outcome, attempt, timer)
        self.outcomes[record.name] = record
        return record

    async def checkpoint_in(
        self, transaction: StepTransaction, outcome: steps_repo.StepOutcome, attempt: AttemptOutcome
    ) -> StepRecord:
        """Store a transactional step's outcome in its own transaction and commit the two
        together. Fenced like every checkpoint: a lost lease rolls the step's writes back."""
        now = self.clock.now()
        try:
            record = await transaction.commit_with(
                lambda conn: write_one(conn, self.lease, outcome, attempt, None, now)
            )
        except (SQLAlchemyError, OSError) as exc:
            raise CheckpointFailed(f"checkpoint could not be written: {exc}") from exc
        self.outcomes[record.name] = record
        return record

    def failed(self, name: str, raw: Any, error: BaseException) -> BaseException:
        """Remember that ``error`` is the failure of step ``name`` and return it to raise."""
        self.step_failures[id(error)] = (name, raw, error)
        return error

    def failure_of(self, error: BaseException) -> tuple[str, Any] | None:
        found = self.step_failures.get(id(error))
        if found is None or found[2] is not error:
            return None
        return found[0], found[1]

    async def run_step(self, call: StepCall[Any]) -> Any:
        if self.suspending:
            await self.park()
        name = call.name
        position, record = self.take_name(name, StepKind.STEP)
        if record is not None:
            if record.status is StepStatus.COMPLETED:
                return decode(record.result)
            if record.status is StepStatus.FAILED:
                raise self.failed(name, record.error, stored_failure(name, record.error))
        if self.runtime.pause_rules.rules:  # no rules, no cost
            await self.runtime.pause_rules.hold_if_paused(self, name)
        async with self.busy():
            return await _StepAttempts(self, call.definition, call, name, position, record).run()

    async def capture(self, name: str, produce: Callable[[], Any]) -> Any:
        if self.suspending:
            await self.park()
        position, record = self.take_name(name, StepKind.CAPTURE)
        if record is not None and record.status is StepStatus.COMPLETED:
            return decode(record.result)
        value = produce()
        if inspect.isawaitable(value):
            value = await value
        now = self.clock.now()
        stored = self.runtime.encode_checked(value)
        async with self.busy():
            await self.checkpoint(
                self.outcome(
                    name,
                    StepKind.CAPTURE,
                    StepStatus.COMPLETED,
                    position,
                    result=stored,
                    completed_at=now,
                )
            )
        return value


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
        call: StepCall[Any],
        name: str,
        position: int,
        record: StepRecord | None,
    ) -> None:
        self.state = state
        self.definition = definition
        self.call = call
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

    async def _begin_transaction(self) -> StepTransaction | None:
        """A transactional step's attempt transaction (``None`` for a plain step)."""
        if not self.definition.transactional:
            return None
        transaction = StepTransaction(self.state.runtime.engine)
        try:
            await transaction.begin()
        except (SQLAlchemyError, OSError) as exc:
            raise CheckpointFailed(f"step transaction could not begin: {exc}") from exc
        return transaction

    async def _attempt(self, limit: datetime | None, started: datetime) -> Any:
        if limit is None:
            return await self.definition.invoke(self.call.args, self.call.kwargs)
        seconds = max((limit - started).total_seconds(), 0.0)
        try:
            async with asyncio.timeout(seconds) as scope:
                return await self.definition.invoke(self.call.args, self.call.kwargs)
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
            log("step_retry_scheduled", f"step {self.name!r} failed; retrying", **self._fields())
            self.attempt += 1
            await self._wait_until(wake_at, suspend=suspend, timer_recorded=True)
            return True
        if policy.max_retries > 0:
            raw = {
                "kind": "retry_exhausted",
                "attempts": self.attempt + 1,
                "last_error": encoded,
                "message": str(error),
            }
            failure: BaseException = RetryExhausted(self.name, self.attempt + 1, error)
        else:
            raw = {"kind": "business", "error": encoded, "message": str(error)}
            failure = error
        await self.state.checkpoint(
            self._outcome(StepStatus.FAILED, error=raw, completed_at=now), attempt
        )
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
        log("step_timed_out", f"step {self.name!r} timed out", **self._fields())
        return self.state.failed(self.name, raw, StepTimedOut(self.name, seconds))

    def _fields(self) -> dict[str, Any]:
        return {
            "execution_id": self.state.execution.execution_id,
            "step": self.name,
            "attempt": self.attempt,
        }


class _AttemptTimedOut(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# The whole execution


async def execute(
    runtime: Runtime,
    handler: DurableHandler[..., Any],
    claimed: ClaimedExecution,
    outcomes: dict[str, StepRecord],
) -> ExecutionRecord | None:
    """Run a claimed execution's current run to its end (or until its lease is lost).

    Returns the finished execution, or ``None`` when this worker no longer owns it (lease lost,
    checkpoint failed): then another claim will replay it.
    """
    execution = claimed.execution
    if execution.deadline_at is None and handler.timeout is not None:
        # Started by name where the handler is not registered: its timeout applies from the
        # start all the same.
        execution = dataclasses.replace(
            execution, deadline_at=execution.created_at + handler.timeout
        )
    state = RunState(runtime, claimed.lease, execution, outcomes)
    fields: dict[str, Any] = {
        "execution_id": claimed.execution.execution_id,
        "task": handler.name,
    }
    token = current_run.set(state)
    try:
        result = await _run_handler(state, handler)
    except (LeaseLost, CheckpointFailed) as exc:
        action = "lease_lost" if isinstance(exc, LeaseLost) else "checkpoint_failed"
        log(action, f"execution stopped on this worker: {exc}", **fields)
        return None
    finally:
        current_run.reset(token)
    try:
        return await _finish(state, result, claimed.execution)
    except LeaseLost as exc:
        log("lease_lost", f"execution finished, but its lease was lost: {exc}", **fields)
        return None
    except (SQLAlchemyError, OSError) as exc:  # a pool timeout, a dropped connection
        # Nothing was recorded: the lease expires and another claim replays the run, whose
        # steps are all stored, and records its end.
        log("finish_failed", f"could not record the end of the run: {exc}", level=30, **fields)
        return None


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
        if rest is None:
            return _Waiting(frozenset(state.awaited_events))
        if not isinstance(rest, Exception):
            raise rest from None  # a BaseException other than our signal: not ours to handle
        return await _recover(state, handler, argument, _classify(state, rest))
    except Exception as exc:
        if state.suspending:  # a branch parked; whatever else the handler did, it waits
            return _Waiting(frozenset(state.awaited_events))
        failure = _classify(state, exc)
        return await _recover(state, handler, argument, failure)
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


def _no_worker() -> RuntimeError:
    """A run's hot writes go through the connections a worker opens (:meth:`Runtime.open_driver`)
    and runs only execute inside a worker, so none open means a bug in Zart, not bad input."""
    return RuntimeError("a durable run wrote outside a worker: Runtime.open_driver was not called")


def _error(kind: str, error: BaseException) -> dict[str, Any]:
    return {"kind": kind, "message": str(error), "error": encode_exception(error)}


async def _finish(state: RunState, outcome: _Outcome, claimed: ExecutionRecord) -> ExecutionRecord:
    """Record the run's end. ``claimed``: the execution as the claim returned it (the run's
    ``state.execution`` may carry a deadline computed from the handler, not stored)."""
    fields: dict[str, Any] = {
        "execution_id": state.execution.execution_id,
        "task": state.execution.task_name,
    }
    if isinstance(outcome, _Waiting):
        driver = state.runtime.driver
        if driver is not None:
            async with driver.transaction() as session:
                record = await executions_repo.suspend_execution_driver(
                    session,
                    state.lease,
                    run_id=state.execution.run_id,
                    now=state.clock.now(),
                    awaited_events=sorted(outcome.awaited_events),
                )
                if record.claimable_at is not None:  # idle workers re-plan their next wake-up
                    await wakeups.notify_driver(session, state.runtime.channel, record.task_name)
        else:
            async with state.runtime.engine.begin() as conn:
                record = await executions_repo.suspend_execution(
                    conn,
                    state.lease,
                    run_id=state.execution.run_id,
                    now=state.clock.now(),
                    awaited_events=sorted(outcome.awaited_events),
                )
                if record.claimable_at is not None:  # idle workers re-plan their next wake-up
                    await wakeups.notify(conn, state.runtime.channel, record.task_name)
        log("execution_suspended", "execution waits", wake_at=record.claimable_at, **fields)
        return record
    completed = isinstance(outcome, _Completed)
    status: Literal[ExecutionStatus.COMPLETED, ExecutionStatus.FAILED] = (
        ExecutionStatus.COMPLETED if completed else ExecutionStatus.FAILED
    )
    result = outcome.result if isinstance(outcome, _Completed) else None
    error = outcome.error if isinstance(outcome, _Failed) else None
    grouped = await state.runtime.finish(state.lease, claimed, status, result, error)
    if grouped is not None:  # PostgreSQL: one statement in autocommit, maybe shared
        record = grouped
    elif (writer := state.runtime.sqlite_writer) is not None:  # one hop to its thread
        now = state.clock.now()
        record = await writer.transaction(
            lambda session: executions_repo.finish_execution_sqlite(
                session, state.lease, status=status, result=result, error=error, now=now
            )
        )
    else:
        raise _no_worker()
    if isinstance(outcome, _Failed):
        log("execution_failed", f"execution failed: {outcome.error['message']}", **fields)
    else:
        log("execution_completed", "execution completed", **fields)
    return record
