"""Zart: durable execution for Python applications that already live on SQLAlchemy.

Decorate async functions as steps and a durable handler; Zart stores every step's outcome in
your database so a handler that crashes, is redeployed or waits resumes where it left off
without running finished steps again::

    @zart.step("send-welcome-email", retry="exponential(3, 2s)")
    async def send_welcome_email(email: str) -> None: ...

    @zart.durable("onboarding")
    async def onboarding(data: OnboardingData) -> Summary:
        await send_welcome_email(data.email)
        ...
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, TypeVar, overload

from zart.durations import RetryPolicy
from zart.errors import (
    ChildFailed,
    ConfigurationError,
    DuplicateStepName,
    EventAlreadyDelivered,
    EventDoesNotFit,
    EventNotAccepted,
    EventTimeout,
    ExecutionAlreadyExists,
    ExecutionCancelled,
    ExecutionDeadlineExceeded,
    ExecutionFailed,
    ExecutionNotFound,
    InvalidExecutionState,
    InvalidName,
    InvalidPayload,
    InvalidQueue,
    InvalidSchedule,
    LeaseLost,
    MigrationError,
    NonDeterministicReplay,
    NoStepTransaction,
    NothingPublished,
    OutsideExecution,
    PauseRuleNotFound,
    PublishedValueTimeout,
    QueueNotFound,
    RecvTimeout,
    RetryExhausted,
    RunNotFound,
    ScheduleNotFound,
    SchemaMissing,
    SchemaOutdated,
    SerializationError,
    StepNotFound,
    StepTimedOut,
    StreamClosed,
    UnknownTask,
    WaitTimedOut,
    ZartError,
)
from zart.models import CatchupPolicy, ExecutionStatus, OverlapPolicy
from zart.models.queues import Queue
from zart.repositories.records import (
    ExecutionDetail,
    ExecutionPage,
    ExecutionRecord,
    NewRun,
    PauseRuleRecord,
    RetriedStep,
    RunRecord,
    ScheduleRecord,
    StepAttemptRecord,
    StepDetail,
    StepRecord,
)
from zart.runtime.children import ChildHandle, run_child, start_child
from zart.runtime.context import ExecutionInfo, context
from zart.runtime.definitions import TimeoutScope
from zart.runtime.functions import capture, now, step_or, step_or_else, step_outcome
from zart.runtime.messages import recv, send
from zart.runtime.outcomes import (
    BusinessErr,
    DeadlineExceeded,
    ExecutionFailure,
    HandlerFailed,
    Ok,
    StepFailed,
    ZartErr,
)
from zart.runtime.patches import deprecate_patch, patched
from zart.runtime.registry import DurableHandler, ExecutionId, durable
from zart.runtime.steps import StepCall, StepDecorator, StepFunction, define_step
from zart.runtime.streams import close_stream, publish, write_stream
from zart.runtime.transactions import session, use_session
from zart.runtime.waits import sleep, sleep_until, wait_for_event
from zart.scheduler import DurableScheduler, SyncScheduler, enqueue
from zart.scheduler.bulk import BulkResult, PruneResult
from zart.settings import Settings

__version__ = "0.1.0"

T = TypeVar("T")


@overload
def step(
    name: str,
    *,
    retry: str | RetryPolicy | None = None,
    timeout: timedelta | float | str | None = None,
    timeout_scope: TimeoutScope = "global",
    transactional: bool = False,
) -> StepDecorator: ...
@overload
def step(name: StepCall[T]) -> Awaitable[Ok[T] | BusinessErr[Any] | ZartErr]: ...
def step(
    name: str | StepCall[Any],
    *,
    retry: str | RetryPolicy | None = None,
    timeout: timedelta | float | str | None = None,
    timeout_scope: TimeoutScope = "global",
    transactional: bool = False,
) -> Any:
    """Two uses, one name, as in the original Zart:

    - ``@zart.step("name", retry=..., timeout=..., timeout_scope=..., transactional=...)``
      declares a step (``transactional=True``: its writes through ``zart.session()`` commit
      with its recorded outcome, see ``docs/transactions.md``);
    - ``await zart.step(some_step(args))`` runs a step call and returns its three-way outcome
      (:class:`Ok`, :class:`BusinessErr` or :class:`ZartErr`) instead of raising.
    """
    if isinstance(name, StepCall):
        if retry is not None or timeout is not None or timeout_scope != "global" or transactional:
            raise ConfigurationError("zart.step(call) takes no options; set them on @zart.step")
        return step_outcome(name)
    return define_step(
        name,
        retry=retry,
        timeout=timeout,
        timeout_scope=timeout_scope,
        transactional=transactional,
    )


__all__ = [
    "BulkResult",
    "BusinessErr",
    "CatchupPolicy",
    "ChildFailed",
    "ChildHandle",
    "ConfigurationError",
    "DeadlineExceeded",
    "DuplicateStepName",
    "DurableHandler",
    "DurableScheduler",
    "EventAlreadyDelivered",
    "EventDoesNotFit",
    "EventNotAccepted",
    "EventTimeout",
    "ExecutionAlreadyExists",
    "ExecutionCancelled",
    "ExecutionDeadlineExceeded",
    "ExecutionDetail",
    "ExecutionFailed",
    "ExecutionFailure",
    "ExecutionId",
    "ExecutionInfo",
    "ExecutionNotFound",
    "ExecutionPage",
    "ExecutionRecord",
    "ExecutionStatus",
    "HandlerFailed",
    "InvalidExecutionState",
    "InvalidName",
    "InvalidPayload",
    "InvalidQueue",
    "InvalidSchedule",
    "LeaseLost",
    "MigrationError",
    "NewRun",
    "NoStepTransaction",
    "NonDeterministicReplay",
    "NothingPublished",
    "Ok",
    "OutsideExecution",
    "OverlapPolicy",
    "PauseRuleNotFound",
    "PauseRuleRecord",
    "PruneResult",
    "PublishedValueTimeout",
    "Queue",
    "QueueNotFound",
    "RecvTimeout",
    "RetriedStep",
    "RetryExhausted",
    "RetryPolicy",
    "RunNotFound",
    "RunRecord",
    "ScheduleNotFound",
    "ScheduleRecord",
    "SchemaMissing",
    "SchemaOutdated",
    "SerializationError",
    "Settings",
    "StepAttemptRecord",
    "StepCall",
    "StepDetail",
    "StepFailed",
    "StepFunction",
    "StepNotFound",
    "StepRecord",
    "StepTimedOut",
    "StreamClosed",
    "SyncScheduler",
    "UnknownTask",
    "WaitTimedOut",
    "ZartErr",
    "ZartError",
    "__version__",
    "capture",
    "close_stream",
    "context",
    "deprecate_patch",
    "durable",
    "enqueue",
    "now",
    "patched",
    "publish",
    "recv",
    "run_child",
    "send",
    "session",
    "sleep",
    "sleep_until",
    "start_child",
    "step",
    "step_or",
    "step_or_else",
    "use_session",
    "wait_for_event",
    "write_stream",
]
