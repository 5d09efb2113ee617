"""One pass of one run through its handler: :class:`RunState`, the context variables that
carry it (and the step attempt in progress) into the handler's tasks, and what a pass does
besides steps: reserving names, checkpoints, waits, captures, suspension and pause holds.

asyncio copies context variables into every task the handler creates, so ``asyncio.gather``
branches and sync steps run in threads see the run too.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn

from zart.clock import Clock
from zart.errors import DuplicateStepName, NonDeterministicReplay
from zart.logs import log
from zart.models import StepKind, StepStatus, TimerKind
from zart.models.names import check_name
from zart.outages import is_transient
from zart.repositories import pause_rules as pause_rules_repo
from zart.repositories import steps as steps_repo
from zart.repositories import timers as timers_repo
from zart.repositories.records import AttemptOutcome, ExecutionRecord, Lease, StepRecord
from zart.repositories.store import Store
from zart.runtime.paths import StepPath, current_task
from zart.runtime.pauses import PAUSE_RECHECK
from zart.runtime.runtime import CheckpointFailed, Runtime, Suspended
from zart.runtime.transactions import StepTransaction
from zart.serialization import decode

#: The recorded outcomes a replay-only pass can answer from the history.
_ANSWERED = (StepStatus.COMPLETED, StepStatus.FAILED)


@dataclass(frozen=True, slots=True)
class StepScope:
    """The step attempt in progress in this task."""

    name: str
    attempt: int
    max_retries: int | None


@dataclass(slots=True)
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
    #: Calls so far in this pass of what names its steps by count: ``zart.recv`` per topic
    #: (:mod:`zart.runtime.messages`), publishes and stream writes per key
    #: (:mod:`zart.runtime.streams`). See :meth:`next_index`.
    counts: dict[str, int] = field(default_factory=dict)
    #: The claim took this run over (the last claim ended without a report): the first step
    #: run anew records the crash of its attempt in flight first (:mod:`zart.runtime.crashes`).
    crash_pending: bool = False
    # Set when a busy region ends, for parked branches; made by the first park() only (most
    # runs never park, and an Event per run was a measurable share of a resume's CPU).
    _changed: asyncio.Event | None = None
    #: Replay only (``zart replay``): a step not answered by the history ends the pass
    #: (:class:`ReplayFrontier`) before anything runs or is written.
    replay_only: bool = False
    #: The first divergence from the recorded history this pass met (:mod:`zart.runtime.paths`):
    #: the execution is held instead of finishing (:mod:`zart.runtime.divergence`).
    diverged: NonDeterministicReplay | None = None
    #: Patch answers given in this pass (:mod:`zart.runtime.patches`).
    patches: dict[str, bool] = field(default_factory=dict)
    path: StepPath = field(init=False)

    def __post_init__(self) -> None:
        self.path = StepPath(self.outcomes, current_task())

    def next_index(self, counter: str) -> int:
        """The index (0, 1, ...) of this call of ``counter`` in this pass: the same on every
        replay, as the calls come in the same order."""
        index = self.counts.get(counter, 0)
        self.counts[counter] = index + 1
        return index

    def diverge(self, error: NonDeterministicReplay) -> NonDeterministicReplay:
        """Remember the first divergence and stop new work: the execution will be held."""
        if self.diverged is None:
            self.diverged = error
        self.suspending = True
        return error

    def busy(self) -> _Busy:
        """Mark a branch busy (running a step, waiting briefly): ``async with run.busy():``.
        No new work starts once the run is suspending: the branch parks instead."""
        return _Busy(self)

    def idle(self) -> None:
        """A busy region ended (see :meth:`busy`): parked branches look again."""
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
            branch=self.path.branch(),
            **values,
        )

    async def record_wait(
        self,
        name: str,
        kind: StepKind,
        position: int,
        wake_at: datetime | None,
        timer: TimerKind | None,
        event_schema: Any = None,
    ) -> StepRecord:
        """Store that step ``name`` waits (until ``wake_at``), with a timer when the run will
        suspend rather than wait in memory, and for an event wait the JSON schema offers of the
        event must fit."""
        outcome = self.outcome(
            name,
            kind,
            StepStatus.WAITING,
            position,
            attempts=0,
            wake_at=wake_at,
            event_schema=event_schema,
        )
        return await self.checkpoint(outcome, timer=timer)

    async def ensure_timer(self, name: str, kind: TimerKind, wake_at: datetime) -> None:
        """A timer for a wait recorded earlier without one (it waited in memory in a process
        with a larger ``inline_wait_limit``) that must now suspend: something must wake it."""
        await self.runtime.write(
            timers_repo.create_timer,
            execution_id=self.execution.execution_id,
            run_id=self.execution.run_id,
            name=name,
            kind=kind,
            fire_at=wake_at,
            now=self.clock.now(),
        )

    def must_suspend(self, wake_at: datetime) -> bool:
        """Whether waiting until ``wake_at`` is long enough to suspend instead of sleeping."""
        return wake_at - self.clock.now() > self.runtime.inline_wait_limit

    @property
    def clock(self) -> Clock:
        return self.runtime.clock

    def take_name(self, name: str, kind: StepKind) -> tuple[int, StepRecord | None]:
        """Reserve ``name`` for this pass; its position and recorded outcome, if any. A name
        that cannot be stored (too long, NUL: e.g. a placeholder filled from a payload) raises
        :class:`~zart.errors.InvalidName` to the handler: the step fails, nothing loops."""
        check_name(name, f"{kind.value} name")
        if name in self.used_names:
            raise DuplicateStepName(name)
        self.used_names.add(name)
        position = self.next_position
        self.next_position += 1
        record = self.outcomes.get(name)
        if record is not None and record.kind is not kind:
            raise self.diverge(
                NonDeterministicReplay(
                    f"{name!r} was recorded as a {record.kind.value} at position"
                    f" {record.position} in this run but is now used as a {kind.value}; the"
                    " handler's code changed under a running execution",
                    step=name,
                    position=record.position,
                )
            )
        try:
            self.path.enter(name, kind, record)
        except NonDeterministicReplay as error:
            raise self.diverge(error) from None
        if self.replay_only and (record is None or record.status not in _ANSWERED):
            raise ReplayFrontier()
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
                lambda conn: Store.on(conn).run(
                    steps_repo.record_step_outcome, self.lease, outcome, attempt=attempt, now=now
                )
            )
        except Exception as exc:
            if is_transient(exc):
                raise CheckpointFailed(f"checkpoint could not be written: {exc}") from exc
            raise
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

    async def hold_if_paused(self, step: str) -> None:
        """Suspend the run before ``step`` starts if an active pause rule covers it: a hold on
        the rule (a timer at its expiry, or at the next re-check) is stored only if the rule is
        still active in the database, then the run parks like any durable wait. A rule that
        is gone from the database holds nothing: the step runs."""
        rules = self.runtime.pause_rules
        execution = self.execution
        now = self.clock.now()
        rule = rules.matching(execution.execution_id, execution.task_name, step, now)
        if rule is None:
            return
        fire_at = now + PAUSE_RECHECK
        if rule.expires_at is not None and rule.expires_at < fire_at:
            fire_at = rule.expires_at
        held = await self.runtime.write(
            pause_rules_repo.hold_execution,
            rule_id=rule.rule_id,
            execution_id=execution.execution_id,
            run_id=execution.run_id,
            fire_at=fire_at,
            now=now,
        )
        if not held:  # removed meanwhile: forget it and run the step
            rules.forget(rule.rule_id)
            return
        log(
            "step_paused",
            f"step {step!r} held by pause rule {rule.rule_id}",
            execution_id=execution.execution_id,
            task_name=execution.task_name,
            step_name=step,
            rule_id=rule.rule_id,
        )
        await self.park()

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


class _Busy:
    """:meth:`RunState.busy`'s context (a class: every step enters one)."""

    __slots__ = ("_run",)

    def __init__(self, run: RunState) -> None:
        self._run = run

    async def __aenter__(self) -> None:
        run = self._run
        if run.suspending:
            await run.park()
        run.active += 1

    async def __aexit__(self, *exc_info: object) -> None:
        self._run.idle()


class ReplayFrontier(BaseException):
    """Ends a replay-only pass where the history ends (a step not recorded or not finished):
    nothing past it runs. A BaseException, so ``except Exception`` in user code does not stop
    it."""


current_run: ContextVar[RunState | None] = ContextVar("zart_current_run", default=None)
current_step: ContextVar[StepScope | None] = ContextVar("zart_current_step", default=None)
