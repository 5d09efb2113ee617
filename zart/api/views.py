"""The documents of the routes the dashboard needs beyond the original's API (workers, tasks,
activity, schedules, pending waits, skipping a sleep): camelCase, like :mod:`zart.wire`, and
like it, keys are an API: add, never rename."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, JsonValue

from zart.models.statuses import CatchupPolicy, OverlapPolicy, StepKind
from zart.repositories.activity import ActivityBucket, TaskActivity
from zart.repositories.records import ScheduleFiring, ScheduleRecord, StepRecord
from zart.scheduler.inspection import Activity, TaskInfo, WorkerView
from zart.wire import Name, Wire


class Worker(Wire):
    """A worker: ``alive`` (heartbeated within two minutes, not stopped), ``running`` (running
    executions it holds a lease on) out of ``concurrency``."""

    worker_id: str
    hostname: str
    pid: int
    task_names: list[str]
    concurrency: int
    started_at: datetime
    last_seen_at: datetime
    stopped_at: datetime | None
    alive: bool
    running: int

    @classmethod
    def of(cls, view: WorkerView) -> Worker:
        worker = view.worker
        return cls(
            worker_id=worker.worker_id,
            hostname=worker.hostname,
            pid=worker.pid,
            task_names=list(worker.task_names),
            concurrency=worker.concurrency,
            started_at=worker.started_at,
            last_seen_at=worker.last_seen_at,
            stopped_at=worker.stopped_at,
            alive=view.alive,
            running=view.running,
        )


class Task(Wire):
    """A task one can start: ``inputSchema`` is the JSON schema of its handler's input when
    the server's process registered the handler (``None`` otherwise, or with no input)."""

    name: str
    registered_here: bool
    takes_input: bool
    input_schema: dict[str, Any] | None
    live_workers: bool

    @classmethod
    def of(cls, info: TaskInfo) -> Task:
        return cls(
            name=info.name,
            registered_here=info.registered_here,
            takes_input=info.takes_input,
            input_schema=info.input_schema,
            live_workers=info.live_workers,
        )


class Bucket(Wire):
    start: datetime
    end: datetime
    started: int
    completed: int
    failed: int

    @classmethod
    def of(cls, bucket: ActivityBucket) -> Bucket:
        return cls(
            start=bucket.start,
            end=bucket.end,
            started=bucket.started,
            completed=bucket.completed,
            failed=bucket.failed,
        )


class TaskFigures(Wire):
    task_name: str
    finished: int
    failed: int
    mean_seconds: float | None
    max_seconds: float | None

    @classmethod
    def of(cls, figures: TaskActivity) -> TaskFigures:
        return cls(
            task_name=figures.task_name,
            finished=figures.finished,
            failed=figures.failed,
            mean_seconds=figures.mean_seconds,
            max_seconds=figures.max_seconds,
        )


class ActivityAnswer(Wire):
    """``GET /zart/admin/v1/activity``: executions over the window in 24 equal buckets, and
    per task those that finished in it."""

    window_secs: float
    buckets: list[Bucket]
    tasks: list[TaskFigures]

    @classmethod
    def of(cls, activity: Activity) -> ActivityAnswer:
        return cls(
            window_secs=activity.window.total_seconds(),
            buckets=[Bucket.of(b) for b in activity.buckets],
            tasks=[TaskFigures.of(t) for t in activity.tasks],
        )


class PendingWait(Wire):
    """What a waiting execution waits for: a ``sleep`` until ``wakeAt``, an ``event`` named
    ``name`` (until ``wakeAt``, its deadline, or for ever), or a ``step``'s retry back-off."""

    name: str
    kind: StepKind
    wake_at: datetime | None
    since: datetime

    @classmethod
    def of(cls, step: StepRecord) -> PendingWait:
        return cls(name=step.name, kind=step.kind, wake_at=step.wake_at, since=step.created_at)


class Schedule(Wire):
    name: str
    task_name: str
    cron: str
    timezone: str
    payload: JsonValue
    overlap: OverlapPolicy
    catchup: CatchupPolicy
    paused: bool
    next_fire_at: datetime | None
    last_fire_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: ScheduleRecord) -> Schedule:
        return cls(
            name=record.name,
            task_name=record.task_name,
            cron=record.cron,
            timezone=record.timezone,
            payload=record.payload,
            overlap=record.overlap,
            catchup=record.catchup,
            paused=record.paused,
            next_fire_at=record.next_fire_at,
            last_fire_at=record.last_fire_at,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


class Firing(Wire):
    """One fire time of a schedule; ``executionId`` is ``None`` when it was skipped."""

    fire_at: datetime
    execution_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, firing: ScheduleFiring) -> Firing:
        return cls(
            fire_at=firing.fire_at,
            execution_id=firing.execution_id,
            created_at=firing.created_at,
        )


class AddSchedule(Wire):
    """``POST /zart/admin/v1/schedules``: add (or update in place) the schedule ``name``."""

    name: Name
    task_name: Name
    cron: Annotated[str, Field(min_length=1, max_length=255)]
    timezone: Annotated[str, Field(min_length=1, max_length=64)] = "UTC"
    payload: JsonValue = None
    overlap: OverlapPolicy | None = None
    catchup: CatchupPolicy | None = None


class SkipSleep(Wire):
    step_name: Name
    triggered_by: Name | None = None
