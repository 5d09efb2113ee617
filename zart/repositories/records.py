"""Frozen values returned by the repositories. No live ORM object ever leaves that layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from zart.models.statuses import (
    AttemptStatus,
    CatchupPolicy,
    ExecutionStatus,
    OverlapPolicy,
    RunTrigger,
    StepKind,
    StepStatus,
    TimerKind,
)


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    """An execution as stored: what ``DurableScheduler.status`` returns."""

    execution_id: str
    task_name: str
    status: ExecutionStatus
    payload: Any
    result: Any
    error: Any
    run_id: str
    run_count: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    deadline_at: datetime | None
    claimable_at: datetime | None
    lease_owner: str | None
    claim_count: int
    version: int
    #: The fire time of the schedule firing that started it; ``None`` for other starts.
    fire_time: datetime | None = None
    #: The execution started to undo this one when it was cancelled (its task's ``on_cancel``).
    compensation_id: str | None = None
    #: The cancelled execution this one undoes, when it is a compensation.
    compensates: str | None = None
    #: Its tags (``start(..., tags=...)``), sorted by key; empty when it has none.
    tags: dict[str, str] = field(default_factory=dict)
    #: Claims in a row, up to the latest, that ended without the worker reporting back (it
    #: died or lost its lease mid-run); ``max_claims`` of them fail it as a crash loop.
    crashed_claims: int = 0
    #: The trace context its start was made in (OpenTelemetry carrier), if any.
    trace_context: dict[str, str] | None = None
    #: Its queue, partition key and priority (``start(..., queue=, partition_key=,
    #: priority=)``; ``docs/queues.md``).
    queue: str = "default"
    partition_key: str | None = None
    priority: int = 0
    #: The execution that started this one as a child (``zart.run_child``), if any.
    parent_execution_id: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal


@dataclass(frozen=True, slots=True)
class CreatedExecution:
    """The outcome of an idempotent create: the stored execution and whether this call made it."""

    execution: ExecutionRecord
    created: bool


@dataclass(frozen=True, slots=True)
class ExecutionPage:
    items: tuple[ExecutionRecord, ...]
    total: int


@dataclass(frozen=True, slots=True)
class Lease:
    """A worker's claim on an execution. Every write the worker makes is fenced by it."""

    execution_id: str
    token: str
    owner: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ClaimedExecution:
    """An execution a worker just claimed, with what it needs to run the current run."""

    lease: Lease
    execution: ExecutionRecord
    #: The status before the claim: ``waiting`` means a wake-up (timer or event) brought it back.
    previous_status: ExecutionStatus = ExecutionStatus.SCHEDULED
    #: When it became claimable before this claim (its start, wake-up or lease expiry time):
    #: the claim lag and wake-up lag metrics measure from it. ``None``: inserted claimed.
    due_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str
    execution_id: str
    run_index: int
    payload: Any
    status: ExecutionStatus
    result: Any
    error: Any
    trigger: RunTrigger
    triggered_by: str | None
    started_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class StepRecord:
    """The stored outcome of one step name in one run."""

    step_id: int
    run_id: str
    execution_id: str
    name: str
    kind: StepKind
    status: StepStatus
    result: Any
    error: Any
    attempts: int
    position: int
    deadline_at: datetime | None
    wake_at: datetime | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    #: The concurrent branch it was recorded in (``zart.runtime.paths``); None: recorded
    #: before revision 0016.
    branch: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What one try of a step produced; written together with the step's outcome."""

    attempt_number: int
    status: AttemptStatus
    started_at: datetime
    completed_at: datetime
    result: Any = None
    error: Any = None


@dataclass(frozen=True, slots=True)
class StepAttemptRecord:
    """One try of a step. ``attempt_id`` is ``None`` for a first try that succeeded: it has no
    row of its own, its step's row records it (``created_at`` its start)."""

    attempt_id: int | None
    step_id: int
    attempt_number: int
    status: AttemptStatus
    result: Any
    error: Any
    started_at: datetime
    completed_at: datetime


@dataclass(frozen=True, slots=True)
class StepDetail:
    """A step of a run's timeline with every attempt it made, oldest first."""

    step: StepRecord
    attempts: tuple[StepAttemptRecord, ...]


@dataclass(frozen=True, slots=True)
class ExecutionDetail:
    """An execution with its run history and the step timeline of one run (``run_id``)."""

    execution: ExecutionRecord
    runs: tuple[RunRecord, ...]
    run_id: str
    steps: tuple[StepDetail, ...]
    #: Every event delivered to the execution, in the order they arrived.
    events: tuple[EventRecord, ...] = ()
    #: The hold of a replay that diverged (its ``reason`` is the verdict), if any.
    divergence: PauseRuleRecord | None = None
    #: The child executions it started (``zart.run_child``), oldest first.
    children: tuple[ExecutionRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class TimerRecord:
    timer_id: int
    execution_id: str
    run_id: str
    name: str
    kind: TimerKind
    fire_at: datetime
    fired_at: datetime | None


@dataclass(frozen=True, slots=True)
class EventRecord:
    event_id: int
    execution_id: str
    name: str
    payload: Any
    received_at: datetime
    consumed_at: datetime | None
    sender: str | None = None


@dataclass(frozen=True, slots=True)
class EventDelivery:
    """A stored event, and whether storing it woke its execution (of task ``task_name``)."""

    event: EventRecord
    task_name: str
    woke: bool


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    worker_id: str
    hostname: str
    pid: int
    task_names: tuple[str, ...]
    concurrency: int
    started_at: datetime
    last_seen_at: datetime
    stopped_at: datetime | None


@dataclass(frozen=True, slots=True)
class PauseRuleRecord:
    """A pause rule: steps matching all of its set fields (an execution, a task, a step-name
    glob) do not start while it is active (not removed, not expired)."""

    rule_id: str
    execution_id: str | None
    task_name: str | None
    step_pattern: str | None
    reason: str | None
    triggered_by: str | None
    created_at: datetime
    expires_at: datetime | None
    deleted_at: datetime | None
    deleted_by: str | None

    def is_active(self, now: datetime) -> bool:
        return self.deleted_at is None and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True, slots=True)
class RetriedStep:
    """A failed step made to run again in its run: ``attempt_number`` is the attempt to come."""

    execution_id: str
    run_id: str
    step_name: str
    attempt_number: int

    @property
    def task_id(self) -> str:
        """The id of the retry (``run:step:attempt``): the original's ``newTaskId``."""
        return f"{self.run_id}:{self.step_name}:{self.attempt_number}"


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run created by a restart or a selective rerun, with what it kept and what it reruns."""

    run: RunRecord
    preserved_steps: tuple[str, ...]
    rerun_steps: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A schedule as stored: what ``DurableScheduler.list_schedules`` returns."""

    name: str
    task_name: str
    cron: str
    timezone: str
    payload: Any
    overlap: OverlapPolicy
    catchup: CatchupPolicy
    paused: bool
    next_fire_at: datetime | None
    last_fire_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ScheduleFiring:
    """One fire time of a schedule, recorded under its fire key ``(schedule_name, fire_at)``.
    ``execution_id`` is ``None`` when the firing was skipped (overlap policy ``skip``)."""

    schedule_name: str
    fire_at: datetime
    execution_id: str | None
    created_at: datetime
