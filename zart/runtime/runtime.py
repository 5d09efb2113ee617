"""What every run on a worker shares: the store, the clock, the limits, and the writes of a
run (checkpoints and finishes, group-committed; the other writes of a wait)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal, ParamSpec, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from zart.clock import SYSTEM_CLOCK, Clock
from zart.errors import LeaseLost, WorkerSignal
from zart.logs import log
from zart.models import ExecutionStatus, TimerKind
from zart.outages import Outage, is_transient
from zart.repositories import children, group_checkpoints, leases, steps, wakeups
from zart.repositories.executors import OperationFunction
from zart.repositories.records import AttemptOutcome, ExecutionRecord, Lease, StepRecord
from zart.repositories.store import Store
from zart.runtime.checkpoints import Batcher
from zart.runtime.pauses import PauseRules
from zart.serialization import check_size, encode

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024

#: Waits (sleeps, retry back-offs) at most this long stay in memory; longer ones suspend.
DEFAULT_INLINE_WAIT_LIMIT = timedelta(seconds=5)


class Suspended(BaseException):
    """Unwinds a handler that waits durably (a long sleep, an event not yet delivered, a long
    retry back-off). A BaseException, so ``except Exception`` in user code does not stop it.
    The worker records the execution as ``waiting`` and drops the coroutine."""


class CheckpointFailed(WorkerSignal):
    """A write of a run (a checkpoint, a timer, a step's transaction) could not be made: the
    database is unavailable for now (:func:`~zart.database.is_transient`). The run stops and
    hands its execution back (:meth:`Runtime.hand_back`); the next claim replays it."""


@dataclass
class Runtime:
    """What every run on a worker shares: the engine's store, the clock and the limits."""

    engine: AsyncEngine
    clock: Clock = SYSTEM_CLOCK
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    inline_wait_limit: timedelta = DEFAULT_INLINE_WAIT_LIMIT
    #: NOTIFY channel of this deployment's wake-ups (see zart.repositories.wakeups).
    channel: str = wakeups.CHANNEL
    #: Active pause rules, checked in memory before a step starts (see zart.runtime.pauses).
    pause_rules: PauseRules = field(default_factory=PauseRules)
    #: The database's availability as this runtime's worker loops and runs find it: one
    #: warning per outage, and each loop's back-off (see zart.database.Outage).
    outage: Outage = field(default_factory=Outage)
    #: Called with the execution id after a run here published a value or wrote to a
    #: stream: wakes this process's readers at once (zart.scheduler.streams).
    stream_written: Callable[[str], None] = field(default=lambda _execution_id: None)
    store: Store = field(init=False, repr=False)
    _checkpoints: Batcher[steps.Checkpoint, StepRecord] = field(init=False, repr=False)
    _finishes: Batcher[leases.Finish, ExecutionRecord] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.store = Store.for_engine(self.engine)
        now = self.clock.now
        self._checkpoints = Batcher(
            self.store,
            steps.record_checkpoint,
            group_checkpoints.record_step_outcomes,
            now,
            "zart-checkpoint-group",
        )
        self._finishes = Batcher(
            self.store, leases.finish_one, leases.finish_executions, now, "zart-finish-group"
        )

    def open_connections(self) -> None:
        """A worker starts: keep the store's connections for its writes until the last
        worker of this runtime stops (:meth:`Store.open`)."""
        self.store.open()

    async def close_connections(self) -> None:
        """A worker stopped (see :meth:`open_connections`)."""
        await self.store.close()

    async def write_checkpoint(
        self,
        lease: Lease,
        outcome: steps.StepOutcome,
        attempt: AttemptOutcome | None,
        timer: TimerKind | None,
    ) -> StepRecord:
        """Store a step's outcome, fenced by ``lease``: grouped with the checkpoints of other
        runs arriving meanwhile (:mod:`zart.runtime.checkpoints`); a wait that will suspend
        is written alone with its timer, in one transaction."""
        try:
            if timer is None or outcome.wake_at is None:
                return await self._checkpoints.submit((lease, outcome, attempt))
            return await self.store.run(
                steps.record_waiting_step,
                lease,
                outcome,
                attempt=attempt,
                timer=timer,
                now=self.clock.now(),
            )
        except Exception as exc:
            if is_transient(exc):
                raise CheckpointFailed(f"checkpoint could not be written: {exc}") from exc
            raise

    async def write(
        self, operation: OperationFunction[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Another write of a run (a timer, an event taken, a pause hold); a database error
        that is transient is :class:`CheckpointFailed`, which stops the run."""
        try:
            return await self.store.run(operation, *args, **kwargs)
        except Exception as exc:
            if is_transient(exc):
                raise CheckpointFailed(f"checkpoint could not be written: {exc}") from exc
            raise

    async def hand_back(self, lease: Lease, task_name: str) -> bool:
        """Give ``lease``'s execution back unfinished after a write of its run failed for an
        outage, trying again (with the outage's back-off) until the database answers: it is
        claimable at once and the workers of ``task_name`` are woken, so the next claim
        (most likely this worker's, the moment the database is back) replays the run from its
        stored outcomes instead of waiting for the lease to expire. True when handed back;
        False when the lease is gone (the write did commit, or another worker took over) or
        the database refused it for good (then the lease expires)."""
        key = f"hand-back {lease.execution_id}"
        try:
            while True:
                try:
                    await self.store.run(
                        leases.release_lease,
                        lease,
                        now=self.clock.now(),
                        channel=self.channel,
                        task_names=[task_name],
                    )
                except LeaseLost:
                    return False
                except Exception as exc:
                    if not is_transient(exc):
                        log(
                            "hand_back_failed",
                            f"could not hand the execution back: {exc}",
                            level=30,
                            execution_id=lease.execution_id,
                            task_name=task_name,
                        )
                        return False
                    await asyncio.sleep(self.outage.failed(key, exc, action="hand_back_failed"))
                else:
                    self.outage.succeeded(key)
                    return True
        finally:
            self.outage.forget(key)

    async def finish(
        self,
        lease: Lease,
        execution: ExecutionRecord,
        status: Literal[ExecutionStatus.COMPLETED, ExecutionStatus.FAILED],
        result: Any,
        error: Any,
    ) -> ExecutionRecord:
        """Record a run's end, grouped with the ends of other runs arriving meanwhile.
        ``execution``: the record the claim behind ``lease`` returned, of which the finished
        one is made (:func:`zart.repositories.leases.finish_executions`). A child's end is
        written alone, with the reserved event that tells its parent, in one transaction
        (:func:`zart.repositories.children.finish_child`)."""
        if execution.parent_execution_id is not None:
            return await self.store.run(
                children.finish_child,
                lease,
                execution=execution,
                status=status,
                result=result,
                error=error,
                now=self.clock.now(),
                channel=self.channel,
            )
        return await self._finishes.submit((lease, execution, status, result, error))

    def encode_checked(self, value: Any, name: str = "result") -> Any:
        data = encode(value, name=name)
        check_size(data, self.max_payload_bytes, name=name)
        return data
