"""Zart's tables: SQLAlchemy 2 declarative models over one :data:`~zart.models.base.metadata`.

Only :mod:`zart.repositories` queries these; everything above it sees frozen values. The
indexes are chosen for the hot paths of DESIGN section 5 and documented in
``docs/architecture.md``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from zart.models.base import Base, JSONValue, UTCDateTime
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

#: Auto-incrementing 64-bit key; SQLite only auto-increments a column typed INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")

ID = 255  # length of user-visible identifiers (execution ids, task, step and event names)
UUID_LENGTH = 36
#: The rows of the ready claim's priority lane (see ``repositories.claims``).
URGENT_WHERE = "priority > 0 AND claimable_at IS NOT NULL"
#: The rows the singleton and debounce unique indexes hold: unfinished singletons, and
#: debounced starts never claimed yet (a claim sets claim_count and takes them out).
SINGLETON_WHERE = "singleton_key IS NOT NULL AND status IN ('scheduled', 'running', 'waiting')"
DEBOUNCE_WHERE = "debounce_key IS NOT NULL AND status = 'scheduled' AND claim_count = 0"


def _one_of(column: str, values: type[StrEnum]) -> str:
    allowed = ", ".join(f"'{value.value}'" for value in values)
    return f"{column} IN ({allowed})"


class ExecutionRow(Base):
    """One invocation of a durable handler, keyed by its idempotency key ``execution_id``.

    ``claimable_at`` is the single column the claim reads: the time from which a worker may
    take the row. It holds the start time of a scheduled execution, the wake-up time of a
    waiting one (NULL while it waits only for an event) and the lease expiry of a running one
    (so an execution whose worker died becomes claimable again by itself). It is NULL once the
    execution is finished, which keeps finished rows out of the partial claim index: claim cost
    does not grow with history.
    """

    __tablename__ = "zart_executions"

    execution_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    task_name: Mapped[str] = mapped_column(String(ID))
    payload: Mapped[Any] = mapped_column(JSONValue)
    status: Mapped[str] = mapped_column(String(16))
    result: Mapped[Any | None] = mapped_column(JSONValue)
    error: Mapped[Any | None] = mapped_column(JSONValue)
    current_run_id: Mapped[str] = mapped_column(String(UUID_LENGTH))
    run_count: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    claimable_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_token: Mapped[str | None] = mapped_column(String(UUID_LENGTH))
    lease_owner: Mapped[str | None] = mapped_column(String(ID))
    claim_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    #: Claims in a row that ended without the worker reporting back (it died or lost its
    #: lease mid-run): the claim adds one when it takes over a ``running`` row and resets it
    #: otherwise; at ``max_claims`` the execution fails as a crash loop (revision 0006).
    crashed_claims: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The fire time of the schedule firing that started it (NULL: not started by a schedule).
    fire_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The execution that undoes this cancelled one (its task's ``on_cancel``), if any.
    compensation_id: Mapped[str | None] = mapped_column(String(ID))
    #: The cancelled execution this one undoes (NULL: not a compensation).
    compensates: Mapped[str | None] = mapped_column(String(ID))
    #: The execution's tags (``start(..., tags=...)``): an object of string values, NULL when it
    #: has none.
    tags: Mapped[Any | None] = mapped_column(JSONValue)
    #: The trace context of the start (W3C ``traceparent``/``tracestate``, as the application's
    #: OpenTelemetry propagator writes it): the parent of the worker's run spans (0011).
    trace_context: Mapped[Any | None] = mapped_column(JSONValue)
    #: Its queue (``zart_queues.name``, not a foreign key: an unknown queue is unlimited), its
    #: partition within the queue and its priority (higher first) (revision 0010).
    queue_name: Mapped[str] = mapped_column(String(64), server_default=text("'default'"))
    partition_key: Mapped[str | None] = mapped_column(String(ID))
    priority: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    #: A singleton start's key: at most one unfinished execution per task and key; a debounced
    #: start's key: at most one not yet claimed per task and key (both unique indexes below,
    #: revision 0013; ``docs/queues.md``).
    singleton_key: Mapped[str | None] = mapped_column(String(ID))
    debounce_key: Mapped[str | None] = mapped_column(String(ID))
    #: A child execution's parent (``zart.run_child`` / ``start_child``; no foreign key: a
    #: parent pruned before its child leaves the child alone) and what the parent's cancel
    #: does to it: ``cancel`` or ``abandon`` (revision 0014; ``docs/composition.md``).
    parent_execution_id: Mapped[str | None] = mapped_column(String(ID))
    parent_close: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (
        CheckConstraint(_one_of("status", ExecutionStatus), name="status"),
        Index(
            "ix_zart_executions_claimable",
            "claimable_at",
            postgresql_where=text("claimable_at IS NOT NULL"),
            sqlite_where=text("claimable_at IS NOT NULL"),
        ),
        # The takeover claim's: leases by expiry, at most the fleet's concurrency of rows, so
        # an expired one is found without reading past a backlog of due starts (0006).
        Index(
            "ix_zart_executions_leases",
            "claimable_at",
            postgresql_where=text("status = 'running'"),
            sqlite_where=text("status = 'running'"),
        ),
        Index("ix_zart_executions_status_created", "status", "created_at"),
        # A limited queue's claim: its due rows, and its running ones counted (0010).
        Index(
            "ix_zart_executions_queue_claimable",
            "queue_name",
            "claimable_at",
            postgresql_where=text("claimable_at IS NOT NULL"),
            sqlite_where=text("claimable_at IS NOT NULL"),
        ),
        Index("ix_zart_executions_task_created", "task_name", "created_at"),
        # Singleton and debounce: the unique indexes that make them exact (revision 0013).
        Index(
            "ux_zart_executions_singleton",
            "task_name",
            "singleton_key",
            unique=True,
            postgresql_where=text(SINGLETON_WHERE),
            sqlite_where=text(SINGLETON_WHERE),
        ),
        Index(
            "ux_zart_executions_debounce",
            "task_name",
            "debounce_key",
            unique=True,
            postgresql_where=text(DEBOUNCE_WHERE),
            sqlite_where=text(DEBOUNCE_WHERE),
        ),
        # A parent's children (its cancel, its detail); children only (revision 0014).
        Index(
            "ix_zart_executions_parent",
            "parent_execution_id",
            postgresql_where=text("parent_execution_id IS NOT NULL"),
            sqlite_where=text("parent_execution_id IS NOT NULL"),
        ),
        # Retention: the oldest finished executions first (revision 0008).
        Index(
            "ix_zart_executions_completed",
            "completed_at",
            postgresql_where=text("completed_at IS NOT NULL"),
            sqlite_where=text("completed_at IS NOT NULL"),
        ),
        # The tag filter (tags @> :tags) on PostgreSQL; tagged rows only. SQLite filters with
        # json_extract and cannot use it, but keeps it cheap: untagged rows are not in it.
        Index(
            "ix_zart_executions_tags",
            "tags",
            postgresql_using="gin",
            postgresql_ops={"tags": "jsonb_path_ops"},
            postgresql_where=text("tags IS NOT NULL"),
            sqlite_where=text("tags IS NOT NULL"),
        ),
    )


# The ready claim's priority lane: executions started with a priority above 0, in claim
# order; rows of priority 0 are not in it, so they cost it nothing (revision 0018).
Index(
    "ix_zart_executions_urgent",
    ExecutionRow.priority.desc(),
    ExecutionRow.claimable_at,
    postgresql_where=text(URGENT_WHERE),
    sqlite_where=text(URGENT_WHERE),
)


class RunRow(Base):
    """One pass of an execution from the top. Append-only: restarts add runs, never edit them."""

    __tablename__ = "zart_runs"

    run_id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    execution_id: Mapped[str] = mapped_column(
        ForeignKey("zart_executions.execution_id", ondelete="CASCADE")
    )
    run_index: Mapped[int] = mapped_column(Integer)
    payload: Mapped[Any] = mapped_column(JSONValue)
    status: Mapped[str] = mapped_column(String(16))
    result: Mapped[Any | None] = mapped_column(JSONValue)
    error: Mapped[Any | None] = mapped_column(JSONValue)
    trigger: Mapped[str] = mapped_column(String(32))
    triggered_by: Mapped[str | None] = mapped_column(String(ID))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("execution_id", "run_index"),
        CheckConstraint(_one_of("status", ExecutionStatus), name="status"),
        CheckConstraint(_one_of("trigger", RunTrigger), name="trigger"),
    )


class StepRow(Base):
    """The authoritative outcome of one step name in one run.

    The unique ``(run_id, name)`` index is both the duplicate guard and the replay path: all
    outcomes of a run load in one index range scan.
    """

    __tablename__ = "zart_steps"

    step_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("zart_runs.run_id", ondelete="CASCADE"))
    execution_id: Mapped[str] = mapped_column(String(ID))
    name: Mapped[str] = mapped_column(String(ID))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    result: Mapped[Any | None] = mapped_column(JSONValue)
    error: Mapped[Any | None] = mapped_column(JSONValue)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    position: Mapped[int] = mapped_column(Integer)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    wake_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: An event wait's ``model=`` as JSON schema: offers are checked against it (revision 0003).
    event_schema: Mapped[Any | None] = mapped_column(JSONValue)
    #: The concurrent branch it was recorded in: ``""`` for the handler's own task, else the
    #: name of the first step of the task (a gather/TaskGroup branch) it ran in; NULL for a
    #: step recorded before revision 0016 (its run is replayed without the step-path check;
    #: ``zart.runtime.paths``).
    branch: Mapped[str | None] = mapped_column(String(ID))

    __table_args__ = (
        UniqueConstraint("run_id", "name"),
        CheckConstraint(_one_of("kind", StepKind), name="kind"),
        CheckConstraint(_one_of("status", StepStatus), name="status"),
    )


class StepAttemptRow(Base):
    """One try of a step: its outcome, error and timing. History only; never read on replay."""

    __tablename__ = "zart_step_attempts"

    attempt_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    step_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("zart_steps.step_id", ondelete="CASCADE")
    )
    attempt_number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    result: Mapped[Any | None] = mapped_column(JSONValue)
    error: Mapped[Any | None] = mapped_column(JSONValue)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("step_id", "attempt_number"),
        CheckConstraint(_one_of("status", AttemptStatus), name="status"),
    )


class TimerRow(Base):
    """A durable wake-up: a sleep, a retry back-off, an event deadline, an execution deadline.

    When a timer is created the execution's ``claimable_at`` is lowered to its ``fire_at`` in
    the same transaction, so the claim never has to join this table; the timer row is the
    record of why and when, and ``fired_at`` says it was consumed.
    """

    __tablename__ = "zart_timers"

    timer_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(
        ForeignKey("zart_executions.execution_id", ondelete="CASCADE")
    )
    run_id: Mapped[str] = mapped_column(ForeignKey("zart_runs.run_id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(ID))
    kind: Mapped[str] = mapped_column(String(32))
    fire_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(_one_of("kind", TimerKind), name="kind"),
        # Suspension reads a run's pending timers; nothing scans timers by time (the claim
        # reads executions.claimable_at), so no index on fire_at.
        Index("ix_zart_timers_run_id", "run_id"),
    )


class EventRow(Base):
    """A named JSON payload delivered to an execution; kept until a wait consumes it."""

    __tablename__ = "zart_events"

    event_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(
        ForeignKey("zart_executions.execution_id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(ID))
    payload: Mapped[Any] = mapped_column(JSONValue)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Who sent it, as the sender said (``zart event send`` names the user and host).
    sender: Mapped[str | None] = mapped_column(String(ID))

    __table_args__ = (UniqueConstraint("execution_id", "name"),)


class ScheduleRow(Base):
    """A cron rule that starts executions of ``task_name``."""

    __tablename__ = "zart_schedules"

    name: Mapped[str] = mapped_column(String(ID), primary_key=True)
    task_name: Mapped[str] = mapped_column(String(ID))
    cron: Mapped[str] = mapped_column(String(ID))
    timezone: Mapped[str] = mapped_column(String(64))
    payload: Mapped[Any] = mapped_column(JSONValue)
    overlap_policy: Mapped[str] = mapped_column(String(32))
    catchup_policy: Mapped[str] = mapped_column(String(32))
    paused: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    next_fire_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_fire_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(_one_of("overlap_policy", OverlapPolicy), name="overlap_policy"),
        CheckConstraint(_one_of("catchup_policy", CatchupPolicy), name="catchup_policy"),
        Index("ix_zart_schedules_next_fire_at", "next_fire_at"),
    )


class ScheduleFiringRow(Base):
    """One fire time of a schedule. The primary key is the fire key: however many workers race
    to fire the same time, the insert lets exactly one of them through.

    No foreign key: the history outlives a removed schedule, and workers prune it by age
    (``schedule_history``; :func:`zart.repositories.schedules.prune_firings`)."""

    __tablename__ = "zart_schedule_firings"

    schedule_name: Mapped[str] = mapped_column(String(ID), primary_key=True)
    fire_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    execution_id: Mapped[str | None] = mapped_column(String(ID))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_zart_schedule_firings_fire_at", "fire_at"),)


class PauseRuleRow(Base):
    """Holds back steps matching an execution, a task and/or a step-name glob until removed or
    expired. Soft-deleted so the audit trail stays."""

    __tablename__ = "zart_pause_rules"

    rule_id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    execution_id: Mapped[str | None] = mapped_column(String(ID))
    task_name: Mapped[str | None] = mapped_column(String(ID))
    step_pattern: Mapped[str | None] = mapped_column(String(ID))
    reason: Mapped[str | None] = mapped_column(String(1024))
    triggered_by: Mapped[str | None] = mapped_column(String(ID))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_by: Mapped[str | None] = mapped_column(String(ID))


class WorkerRow(Base):
    """A live (or recently live) worker and the task names it can run; lets a control plane
    without the handler's code accept a start by name."""

    __tablename__ = "zart_workers"

    worker_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(ID))
    pid: Mapped[int] = mapped_column(Integer)
    task_names: Mapped[Any] = mapped_column(JSONValue)
    concurrency: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_zart_workers_last_seen_at", "last_seen_at"),)


class QueueRow(Base):
    """A queue's limits, shared by every worker (``zart.Queue``; ``docs/queues.md``).

    ``declared`` is the code's last declaration of the limits: a worker that starts with a
    different one stores it; otherwise an operator's change (``zart queues set``) stays.
    """

    __tablename__ = "zart_queues"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    concurrency: Mapped[int | None] = mapped_column(Integer)
    partition_concurrency: Mapped[int | None] = mapped_column(Integer)
    #: ``"N/period"`` as written by :class:`zart.models.queues.RateLimit`.
    rate_limit: Mapped[str | None] = mapped_column(String(64))
    #: The same per partition key (revision 0017).
    partition_rate_limit: Mapped[str | None] = mapped_column(String(64))
    paused: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    declared: Mapped[Any | None] = mapped_column(JSONValue)
    #: The partition its last claim served last: the next claim serves the partitions after
    #: it first (round-robin), so a busy partition cannot starve the others.
    partition_cursor: Mapped[str | None] = mapped_column(String(ID))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class QueueStartRow(Base):
    """One start (claim of a ``scheduled`` execution) of a rate-limited queue: the rate limits
    count them over their window (per partition for ``partition_rate_limit``); older ones
    are deleted by the next claim of the queue."""

    __tablename__ = "zart_queue_starts"

    start_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    queue_name: Mapped[str] = mapped_column(String(64))
    execution_id: Mapped[str] = mapped_column(String(ID))
    #: The execution's partition key, counted by a ``partition_rate_limit`` (revision 0017).
    partition_key: Mapped[str | None] = mapped_column(String(ID))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_zart_queue_starts_queue_started", "queue_name", "started_at"),)
