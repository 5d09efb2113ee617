"""The closed vocabularies stored in Zart's tables (DESIGN section 2 names them)."""

from __future__ import annotations

from enum import StrEnum


class ExecutionStatus(StrEnum):
    """Where an execution stands. ``completed``, ``failed`` and ``cancelled`` are terminal."""

    SCHEDULED = "scheduled"
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}
)


class RunTrigger(StrEnum):
    """What created a run: the first start, an admin restart or a selective rerun."""

    INITIAL = "initial"
    RESTART = "restart"
    SELECTIVE_RERUN = "selective_rerun"


class StepKind(StrEnum):
    """What a step row records: a step function, a captured value, a sleep or an event wait."""

    STEP = "step"
    CAPTURE = "capture"
    SLEEP = "sleep"
    EVENT = "event"

    @property
    def retriable(self) -> bool:
        """Whether retry-step can run a failed row of this kind again: a step function, or an
        event wait (it waits again for a new event)."""
        return self in (StepKind.STEP, StepKind.EVENT)


class StepStatus(StrEnum):
    """``waiting`` covers a retry back-off, a sleep and an event not yet delivered."""

    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"


class AttemptStatus(StrEnum):
    """How a step attempt ended. ``crashed``: its worker died (or lost its lease) while it
    ran; recorded by the claim that took the execution over (revision 0006)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CRASHED = "crashed"


class TimerKind(StrEnum):
    """Why an execution must wake up at a given time."""

    SLEEP = "sleep"
    RETRY = "retry"
    EVENT_TIMEOUT = "event_timeout"
    EXECUTION_DEADLINE = "execution_deadline"


class OverlapPolicy(StrEnum):
    """What a schedule does when its previous execution still runs at the next fire time."""

    SKIP = "skip"
    ALLOW = "allow"
    CANCEL_PREVIOUS = "cancel_previous"


class CatchupPolicy(StrEnum):
    """What a schedule does with fire times missed while no worker ran."""

    SKIP = "skip"
    LATEST = "latest"
    ALL = "all"
