"""The only code that builds SQL or touches a connection.

Operations are named after domain operations and written once, as generators of statements
(:mod:`.executors`); a :class:`~zart.repositories.store.Store` or an executor on a caller's
connection runs them. They return frozen values (:mod:`.records`).
"""

from zart.repositories import (
    claims,
    events,
    executions,
    leases,
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
    "claims",
    "events",
    "executions",
    "leases",
    "runs",
    "schedules",
    "steps",
    "timers",
    "wakeups",
    "workers",
]
