"""The only code that builds SQL or touches a connection.

Functions are named after domain operations, take the caller's ``AsyncConnection`` and never
commit: the caller owns the transaction. They return frozen values (:mod:`.records`).
"""

from zart.repositories import (
    events,
    executions,
    runs,
    schedules,
    steps,
    timers,
    wakeups,
    workers,
)
from zart.repositories.records import (
    AttemptOutcome,
    ClaimedExecution,
    CreatedExecution,
    EventRecord,
    ExecutionDetail,
    ExecutionPage,
    ExecutionRecord,
    Lease,
    RunRecord,
    ScheduleFiring,
    ScheduleRecord,
    StepAttemptRecord,
    StepDetail,
    StepRecord,
    TimerRecord,
    WorkerRecord,
)

__all__ = [
    "AttemptOutcome",
    "ClaimedExecution",
    "CreatedExecution",
    "EventRecord",
    "ExecutionDetail",
    "ExecutionPage",
    "ExecutionRecord",
    "Lease",
    "RunRecord",
    "ScheduleFiring",
    "ScheduleRecord",
    "StepAttemptRecord",
    "StepDetail",
    "StepRecord",
    "TimerRecord",
    "WorkerRecord",
    "events",
    "executions",
    "runs",
    "schedules",
    "steps",
    "timers",
    "wakeups",
    "workers",
]
