"""The wire format (DESIGN section 4): camelCase JSON documents, as the original Zart server
sends them. The HTTP API answers with these models and ``zart ... --json`` prints them, so a
script sees one shape whichever edge it reads. Each model converts from the frozen records the
scheduler returns. Keys are an API: add, never rename.

Beyond the original's keys, ``Execution`` carries ``error``, ``runId``, ``runCount``,
``updatedAt`` and ``crashedClaims``, ``Run`` ``error`` and ``triggeredBy``, ``Step`` ``wakeAt`` and
``lastErrorDetail`` (the structured error beside the original's ``lastError`` string), an
attempt ``errorDetail``, a pause rule ``triggeredBy`` (the same value as the original's
``createdBy``) and ``reason``, ``Stats`` ``waiting``, and ``Detail`` the ``runId`` of the run it
shows and the ``events`` delivered. Clients of the original ignore keys they do not know.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, JsonValue
from pydantic.alias_generators import to_camel

from zart.models import ExecutionStatus
from zart.models.statuses import AttemptStatus, RunTrigger, StepKind, StepStatus
from zart.repositories.executions import SortField
from zart.repositories.records import (
    EventRecord,
    ExecutionDetail,
    ExecutionRecord,
    PauseRuleRecord,
    RunRecord,
    StepAttemptRecord,
    StepDetail,
)
from zart.runtime.paths import PATCH_PREFIX
from zart.scheduler.bulk import BulkResult, PruneResult

#: No NUL: PostgreSQL text cannot hold it.
NO_NUL = r"^[^\x00]*$"
#: An identifier as stored (execution ids, task, step and event names).
Name = Annotated[str, Field(min_length=1, max_length=255, pattern=NO_NUL)]
Text = Annotated[str, Field(min_length=1, max_length=1024, pattern=NO_NUL)]


def utc_instant(value: datetime) -> datetime:
    """An aware time in UTC; ``ValueError`` for one that leaves the calendar once in UTC
    (``0001-01-01T00:00:00+14:00``, ``9999-12-31T23:59:59-14:00``), which the database cannot
    store or compare."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            f"{value.isoformat()} is out of range once in UTC (years 1 to 9999)"
        ) from None


#: An aware time, given in any zone, as UTC (the queries' ``from``/``to``, ``expiresAt``).
UtcTime = Annotated[AwareDatetime, AfterValidator(utc_instant)]


class Wire(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class Execution(Wire):
    """An execution: ``name`` is its task name, ``scheduledAt`` when it was started."""

    name: str
    durable_execution_id: str
    payload: JsonValue
    status: ExecutionStatus
    scheduled_at: datetime
    completed_at: datetime | None
    version: int
    result: JsonValue
    error: JsonValue
    run_id: str
    run_count: int
    updated_at: datetime
    #: The execution started to undo this cancelled one (its task's ``on_cancel``).
    compensation_id: str | None = None
    #: The cancelled execution this one undoes.
    compensates: str | None = None
    #: Its tags (``{}`` when none).
    tags: dict[str, str] = Field(default_factory=dict)
    #: Claims in a row that ended without the worker reporting back (``crash_loop`` at the
    #: handler's ``max_claims``).
    crashed_claims: int
    #: The execution that started this one as a child (``zart.run_child``), if any.
    parent_execution_id: str | None = None

    @classmethod
    def of(cls, record: ExecutionRecord) -> Execution:
        return cls(
            name=record.task_name,
            durable_execution_id=record.execution_id,
            payload=record.payload,
            status=record.status,
            scheduled_at=record.created_at,
            completed_at=record.completed_at,
            version=record.version,
            result=record.result,
            error=record.error,
            run_id=record.run_id,
            run_count=record.run_count,
            updated_at=record.updated_at,
            compensation_id=record.compensation_id,
            compensates=record.compensates,
            tags=record.tags,
            crashed_claims=record.crashed_claims,
            parent_execution_id=record.parent_execution_id,
        )


class ExecutionList(Wire):
    """What ``zart list --json`` prints. (The HTTP list answers a plain array of
    :class:`Execution`, as the original does, with the total in ``X-Total-Count``.)"""

    items: list[Execution]
    total: int
    limit: int
    offset: int


class StartExecution(Wire):
    """``POST /api/v1/executions``: start ``taskName`` with ``payload`` (idempotent by id)."""

    execution_id: Name | None = None
    task_name: Name
    payload: JsonValue = None
    #: Tag keys to strings (rules: ``zart.models.names.check_tags``).
    tags: dict[str, str] | None = None
    #: Its queue (default: the handler's), partition key and priority (higher first); checked
    #: by the scheduler (``zart.models.queues``).
    queue: JsonValue = None
    partition_key: JsonValue = None
    priority: JsonValue = 0
    #: A singleton start's key; a debounced start's window (``"30s"``) and key; checked by
    #: the scheduler (``zart.scheduler.starts.check_start_keys``).
    singleton_key: JsonValue = None
    debounce: JsonValue = None
    debounce_key: JsonValue = None


class Stats(Wire):
    """Executions per status. The original's clients know no ``waiting`` status, so
    ``running`` counts the waiting executions too (a waiting execution is under way; the
    original shows its sleeping runs as running) and ``waiting`` says how many of them wait."""

    scheduled: int
    running: int
    waiting: int
    completed: int
    failed: int
    cancelled: int

    @classmethod
    def of(cls, counts: dict[ExecutionStatus, int]) -> Stats:
        values = {status.value: counts.get(status, 0) for status in ExecutionStatus}
        values["running"] += values["waiting"]
        return cls(**values)


class Run(Wire):
    run_id: str
    execution_id: str
    run_index: int
    payload: JsonValue
    status: ExecutionStatus
    result: JsonValue
    error: JsonValue
    started_at: datetime
    completed_at: datetime | None
    trigger: RunTrigger
    triggered_by: str | None

    @classmethod
    def of(cls, run: RunRecord) -> Run:
        return cls(
            run_id=run.run_id,
            execution_id=run.execution_id,
            run_index=run.run_index,
            payload=run.payload,
            status=run.status,
            result=run.result,
            error=run.error,
            started_at=run.started_at,
            completed_at=run.completed_at,
            trigger=run.trigger,
            triggered_by=run.triggered_by,
        )


def error_text(error: JsonValue) -> str | None:
    """A stored error as the one line the original sends (``lastError``, an attempt's
    ``error``): ``"ValueError: card declined"``; ``None`` when there is no error."""
    if error is None:
        return None
    if not isinstance(error, dict):
        return str(error)
    message = error.get("message")
    text = message if isinstance(message, str) else str(error.get("kind") or "error")
    inner = error.get("last_error") or error.get("error") or error
    kind = inner.get("type") if isinstance(inner, dict) else None
    if isinstance(kind, str) and kind:
        return f"{kind.rpartition(':')[2].rpartition('.')[2]}: {text}"
    return text


class Attempt(Wire):
    attempt_number: int
    status: AttemptStatus
    result: JsonValue
    error: str | None
    error_detail: JsonValue
    started_at: datetime
    completed_at: datetime

    @classmethod
    def of(cls, attempt: StepAttemptRecord) -> Attempt:
        return cls(
            attempt_number=attempt.attempt_number,
            status=attempt.status,
            result=attempt.result,
            error=error_text(attempt.error),
            error_detail=attempt.error,
            started_at=attempt.started_at,
            completed_at=attempt.completed_at,
        )


class Step(Wire):
    """A step of a run's timeline. ``retryable``: ``retry-step`` accepts it now.
    ``scheduledAt``: when the step began (its first attempt's start; a step without attempts,
    a sleep or an event wait, began when it was recorded), never after its ``completedAt``."""

    step_id: str
    name: str
    kind: StepKind
    status: StepStatus
    retry_attempt: int
    result: JsonValue
    last_error: str | None
    last_error_detail: JsonValue
    retryable: bool
    scheduled_at: datetime
    completed_at: datetime | None
    wake_at: datetime | None
    attempts: list[Attempt]

    @classmethod
    def of(cls, detail: StepDetail, execution_failed: bool) -> Step:
        step = detail.step
        began = [step.created_at, *(a.started_at for a in detail.attempts[:1])]
        if step.completed_at is not None:
            began.append(step.completed_at)
        return cls(
            step_id=str(step.step_id),
            name=step.name,
            kind=step.kind,
            status=step.status,
            retry_attempt=max(step.attempts - 1, 0),
            result=step.result,
            last_error=error_text(step.error),
            last_error_detail=step.error,
            retryable=execution_failed and step.kind.retriable and step.status is StepStatus.FAILED,
            scheduled_at=min(began),
            completed_at=step.completed_at,
            wake_at=step.wake_at,
            attempts=[Attempt.of(a) for a in detail.attempts],
        )


class Event(Wire):
    """An event delivered to an execution: when it arrived, from whom, whether a wait took it."""

    name: str
    payload: JsonValue
    received_at: datetime
    consumed_at: datetime | None
    sender: str | None

    @classmethod
    def of(cls, event: EventRecord) -> Event:
        return cls(
            name=event.name,
            payload=event.payload,
            received_at=event.received_at,
            consumed_at=event.consumed_at,
            sender=event.sender,
        )


class Divergence(Wire):
    """Why an execution is held: its replay left the recorded history (``docs/versioning.md``);
    ``zart resume-diverged`` / ``zart fail-diverged`` answer it."""

    message: str
    detected_at: datetime
    rule_id: str


class Detail(Wire):
    execution: Execution
    runs: list[Run]
    run_id: str
    steps: list[Step]
    #: Every event delivered to the execution, in the order they arrived.
    events: list[Event] = Field(default_factory=list)
    #: The replay divergence that holds it, if any.
    divergence: Divergence | None = None
    #: The patches (``zart.patched``) the shown run took, in the order it met them.
    patches: list[str] = Field(default_factory=list)
    #: The child executions it started, oldest first.
    children: list[Execution] = Field(default_factory=list)

    @classmethod
    def of(cls, detail: ExecutionDetail) -> Detail:
        current = detail.run_id == detail.execution.run_id
        failed = current and detail.execution.status is ExecutionStatus.FAILED
        return cls(
            execution=Execution.of(detail.execution),
            runs=[Run.of(r) for r in detail.runs],
            run_id=detail.run_id,
            steps=[Step.of(s, failed) for s in detail.steps],
            events=[Event.of(e) for e in detail.events],
            divergence=_divergence(detail),
            patches=[
                s.step.name[len(PATCH_PREFIX) :]
                for s in detail.steps
                if s.step.name.startswith(PATCH_PREFIX)
            ],
            children=[Execution.of(c) for c in detail.children],
        )


def _divergence(detail: ExecutionDetail) -> Divergence | None:
    held = detail.divergence
    if held is None:
        return None
    return Divergence(
        message=held.reason or "replay diverged", detected_at=held.created_at, rule_id=held.rule_id
    )


class RetryStep(Wire):
    step_name: Name
    triggered_by: Name | None = None


class RetryStepAnswer(Wire):
    """``newTaskId``: ``<runId>:<stepName>:<attemptNumber>`` of the attempt to come."""

    new_task_id: str


class Restart(Wire):
    payload: JsonValue = None
    triggered_by: Name | None = None


class RestartAnswer(Wire):
    new_run_id: str


class Rerun(Wire):
    rerun_steps: list[Name] = Field(default_factory=list, max_length=1000)
    preserve_steps: list[Name] = Field(default_factory=list, max_length=1000)
    triggered_by: Name | None = None


class RerunAnswer(Wire):
    new_run_number: int
    effective_rerun: list[str]


class BulkFilter(Wire):
    """Which executions a bulk action takes (``/zart/admin/v1/bulk/...``): every field
    optional, but at least one is needed; ``from``/``to`` bound the start time."""

    task_name: Name | None = None
    tags: dict[str, str] | None = None
    created_from: UtcTime | None = Field(default=None, alias="from")
    created_to: UtcTime | None = Field(default=None, alias="to")
    dry_run: bool = False


class BulkCancel(BulkFilter):
    status: ExecutionStatus | None = None


class BulkRestart(BulkFilter):
    status: ExecutionStatus = ExecutionStatus.FAILED
    triggered_by: Name | None = None


class BulkRetryStep(BulkFilter):
    step_name: Name
    triggered_by: Name | None = None


class BulkSkipped(Wire):
    execution_id: str
    reason: str


class BulkAnswer(Wire):
    """What a bulk action did (see ``zart.scheduler.bulk.BulkResult``)."""

    action: str
    matched: int
    done: list[str]
    skipped: list[BulkSkipped]
    dry_run: bool

    @classmethod
    def of(cls, result: BulkResult) -> BulkAnswer:
        return cls(
            action=result.action,
            matched=result.matched,
            done=list(result.done),
            skipped=[BulkSkipped(execution_id=i, reason=r) for i, r in result.skipped],
            dry_run=result.dry_run,
        )


class Prune(Wire):
    """``POST /zart/admin/v1/prune``: delete finished executions older than ``olderThan``."""

    older_than: Annotated[str, Field(min_length=1, max_length=64)] = "30d"
    status: ExecutionStatus | None = None
    task_name: Name | None = None
    dry_run: bool = False


class PruneAnswer(Wire):
    matched: int
    deleted: int
    dry_run: bool

    @classmethod
    def of(cls, result: PruneResult) -> PruneAnswer:
        return cls(matched=result.matched, deleted=result.deleted, dry_run=result.dry_run)


class CreatePauseRule(Wire):
    """A rule needs at least one of ``executionId``, ``taskName``, ``stepPattern`` (a glob);
    it expires at ``expiresAt`` or after ``expiresInSecs`` (not both), or never."""

    execution_id: Name | None = None
    task_name: Name | None = None
    step_pattern: Name | None = None
    reason: Text | None = None
    triggered_by: Name | None = None
    expires_at: UtcTime | None = None
    expires_in_secs: Annotated[float, Field(gt=0, le=10 * 365 * 86400)] | None = None


class PauseRule(Wire):
    rule_id: str
    execution_id: str | None
    task_name: str | None
    step_pattern: str | None
    reason: str | None
    triggered_by: str | None
    created_by: str | None
    created_at: datetime
    expires_at: datetime | None
    deleted_at: datetime | None
    deleted_by: str | None

    @classmethod
    def of(cls, rule: PauseRuleRecord) -> PauseRule:
        return cls(
            rule_id=rule.rule_id,
            execution_id=rule.execution_id,
            task_name=rule.task_name,
            step_pattern=rule.step_pattern,
            reason=rule.reason,
            triggered_by=rule.triggered_by,
            created_by=rule.triggered_by,
            created_at=rule.created_at,
            expires_at=rule.expires_at,
            deleted_at=rule.deleted_at,
            deleted_by=rule.deleted_by,
        )


class EventAccepted(Wire):
    """The event is stored: the 202 body of ``POST /api/v1/events/...`` and what ``zart event
    send --json`` prints."""

    durable_execution_id: str
    event: str
    payload: JsonValue
    accepted: bool = True


class MessageAccepted(Wire):
    """The message is stored: the 202 body of ``POST /api/v1/executions/{id}/messages/{topic}``
    and what ``zart message send --json`` prints."""

    durable_execution_id: str
    topic: str
    message: JsonValue
    accepted: bool = True


class ErrorBody(Wire):
    code: str
    message: str


class ErrorEnvelope(Wire):
    """Every error answer: ``{"error": {"code": "...", "message": "..."}}``."""

    error: ErrorBody


SortOrder = Literal["asc", "desc"]

#: ``sortBy`` values: the original's snake_case ones (what its UI sends) and camelCase. The
#: original sorts by scheduled time for any other value, and so do we (:func:`sort_field`).
SORT_FIELDS: dict[str, SortField] = {
    "status": "status",
    "task_name": "task_name",
    "taskName": "task_name",
    "scheduled_at": "created_at",
    "scheduledAt": "created_at",
    "created_at": "created_at",
    "createdAt": "created_at",
    "completed_at": "completed_at",
    "completedAt": "completed_at",
}


def sort_field(sort_by: str | None) -> SortField:
    """The column ``sortBy`` names; scheduled time for a value it does not know."""
    return SORT_FIELDS.get(sort_by or "", "created_at")
