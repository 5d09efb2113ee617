"""SQLAlchemy models of Zart's tables (all prefixed ``zart_``) and their vocabularies."""

from zart.models.base import Base, JSONValue, UTCDateTime, metadata, table_of
from zart.models.statuses import (
    TERMINAL_STATUSES,
    AttemptStatus,
    CatchupPolicy,
    ExecutionStatus,
    OverlapPolicy,
    RunTrigger,
    StepKind,
    StepStatus,
    TimerKind,
)
from zart.models.tables import (
    EventRow,
    ExecutionRow,
    PauseRuleRow,
    RunRow,
    ScheduleFiringRow,
    ScheduleRow,
    StepAttemptRow,
    StepRow,
    TimerRow,
    WorkerRow,
)

__all__ = [
    "TERMINAL_STATUSES",
    "AttemptStatus",
    "Base",
    "CatchupPolicy",
    "EventRow",
    "ExecutionRow",
    "ExecutionStatus",
    "JSONValue",
    "OverlapPolicy",
    "PauseRuleRow",
    "RunRow",
    "RunTrigger",
    "ScheduleFiringRow",
    "ScheduleRow",
    "StepAttemptRow",
    "StepKind",
    "StepRow",
    "StepStatus",
    "TimerKind",
    "TimerRow",
    "UTCDateTime",
    "WorkerRow",
    "metadata",
    "table_of",
]
