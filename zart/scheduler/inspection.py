"""What an operator looks at: one execution's detail (its runs, step timeline, events, hold
and children) and what its waits wait for; beyond one execution, the dashboard's overview,
workers, the task catalogue, a schedule's firings; and skipping a sleep."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from zart.errors import (
    ExecutionNotFound,
    InvalidExecutionState,
    InvalidPayload,
    RunNotFound,
    ScheduleNotFound,
    StepNotFound,
)
from zart.logs import log
from zart.models import ExecutionStatus
from zart.repositories import activity as activity_repo
from zart.repositories import children as children_repo
from zart.repositories import divergences, wakeups
from zart.repositories import events as events_repo
from zart.repositories import executions as executions_repo
from zart.repositories import runs as runs_repo
from zart.repositories import schedules as schedules_repo
from zart.repositories import steps as steps_repo
from zart.repositories import timers as timers_repo
from zart.repositories import workers as workers_repo
from zart.repositories.activity import BUCKETS, ActivityBucket, TaskActivity
from zart.repositories.records import (
    ExecutionDetail,
    ExecutionRecord,
    ScheduleFiring,
    StepDetail,
    StepRecord,
    WorkerRecord,
)
from zart.runtime.registry import find_handler, registered_names
from zart.scheduler.base import LIVE_WORKER_WINDOW, SchedulerBase
from zart.serialization.schemas import model_schema

#: Workers stopped or silent for longer than this are left out of :meth:`list_workers`.
WORKER_HISTORY = timedelta(hours=1)
#: The longest window :meth:`activity` looks back over.
MAX_ACTIVITY_WINDOW = timedelta(days=31)


@dataclass(frozen=True, slots=True)
class WorkerView:
    """A worker, whether it is alive (heartbeated recently, not stopped) and how many running
    executions it holds."""

    worker: WorkerRecord
    alive: bool
    running: int


@dataclass(frozen=True, slots=True)
class Activity:
    """The overview of a window: executions per bucket, and per task."""

    window: timedelta
    buckets: tuple[ActivityBucket, ...]
    tasks: tuple[TaskActivity, ...]


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """A task name this process or a live worker knows: its input's JSON schema when a handler
    registered here takes one (``None``: no input, or a type pydantic cannot describe)."""

    name: str
    registered_here: bool
    takes_input: bool
    input_schema: dict[str, Any] | None
    live_workers: bool


class InspectionOperations(SchedulerBase):
    """The inspection part of :class:`~zart.DurableScheduler`."""

    async def execution_detail(
        self, execution_id: str, run_id: str | None = None
    ) -> ExecutionDetail:
        """The execution with every run and the step timeline (steps with their attempts) of
        ``run_id``, the current run by default.

        Raises :class:`~zart.ExecutionNotFound`, or :class:`~zart.RunNotFound` when the
        execution has no run ``run_id``. Seven queries, whatever the number of steps (the fifth
        reads the execution's events, with their arrival times and senders; the sixth its
        divergence hold, if a replay diverged; the last its children).
        """
        async with self.store.reading() as db:
            execution = await db.run(executions_repo.get_execution, execution_id)
            if execution is None:
                raise ExecutionNotFound(execution_id)
            runs = await db.run(runs_repo.list_runs, execution_id)
            shown = execution.run_id if run_id is None else run_id
            if all(run.run_id != shown for run in runs):
                raise RunNotFound(execution_id, shown)
            steps = await db.run(steps_repo.list_steps, shown)
            attempts = await db.run(steps_repo.list_step_attempts, steps)
            events = await db.run(events_repo.list_events, execution_id)
            held = await db.run(divergences.divergence_of, execution_id, now=self.clock.now())
            children = await db.run(children_repo.children_of, execution_id)
        return ExecutionDetail(
            execution=execution,
            runs=tuple(runs),
            run_id=shown,
            steps=tuple(StepDetail(s, tuple(attempts[s.step_id])) for s in steps),
            events=tuple(events),
            divergence=held,
            children=tuple(children),
        )

    async def pending_waits(
        self, executions: Iterable[ExecutionRecord]
    ) -> dict[str, tuple[StepRecord, ...]]:
        """What each of the ``waiting`` executions given waits for: its current run's waiting
        steps (sleeps, event waits with their deadlines in ``wake_at``, retry back-offs), by
        execution id. One query, whatever the number of executions."""
        waiting = {
            e.run_id: e.execution_id for e in executions if e.status is ExecutionStatus.WAITING
        }
        async with self.store.reading() as db:
            steps = await db.run(steps_repo.list_waiting_steps, list(waiting))
        found: dict[str, list[StepRecord]] = {execution_id: [] for execution_id in waiting.values()}
        for step in steps:
            found[waiting[step.run_id]].append(step)
        return {execution_id: tuple(items) for execution_id, items in found.items()}

    async def list_workers(self) -> list[WorkerView]:
        """The workers alive, and those stopped or silent within the last hour, newest first,
        each with the number of running executions it holds."""
        now = self.clock.now()
        async with self.store.reading() as db:
            found = await db.run(workers_repo.list_workers, seen_since=now - WORKER_HISTORY)
        return [
            WorkerView(
                worker=worker,
                alive=worker.stopped_at is None and worker.last_seen_at >= now - LIVE_WORKER_WINDOW,
                running=running,
            )
            for worker, running in found
        ]

    async def activity(self, window: timedelta = timedelta(hours=1)) -> Activity:
        """Starts, completions and failures over the last ``window`` in equal buckets, and per
        task the executions that finished in it (how many, how many failed, how long)."""
        if not timedelta(minutes=1) <= window <= MAX_ACTIVITY_WINDOW:
            raise InvalidPayload("the activity window must be between 1 minute and 31 days")
        now = self.clock.now()
        since = now - window
        edges = [since + window * i / BUCKETS for i in range(BUCKETS)] + [now]
        async with self.store.reading() as db:
            buckets = await db.run(activity_repo.activity_buckets, edges)
            tasks = await db.run(activity_repo.task_activity, since=since)
        return Activity(window=window, buckets=tuple(buckets), tasks=tuple(tasks))

    async def tasks(self) -> list[TaskInfo]:
        """The task names registered in this process or run by a live worker, by name."""
        live = await self._live_task_names()
        found: list[TaskInfo] = []
        for name in sorted({*registered_names(), *live}):
            handler = find_handler(name)
            takes = handler is not None and handler.takes_input
            schema = model_schema(handler.input_type) if handler is not None and takes else None
            found.append(
                TaskInfo(
                    name=name,
                    registered_here=handler is not None,
                    takes_input=takes,
                    input_schema=schema,
                    live_workers=name in live,
                )
            )
        return found

    async def waits_of_runs(self, run_ids: Sequence[str]) -> dict[str, tuple[StepRecord, ...]]:
        """What is waiting in the runs ``run_ids`` (sleeps, event waits, retry back-offs), by
        execution id; runs with nothing waiting are absent. One query."""
        async with self.store.reading() as db:
            steps = await db.run(steps_repo.list_waiting_steps, list(dict.fromkeys(run_ids)))
        found: dict[str, list[StepRecord]] = {}
        for step in steps:
            found.setdefault(step.execution_id, []).append(step)
        return {key: tuple(items) for key, items in found.items()}

    async def schedule_firings(self, name: str, *, limit: int = 20) -> list[ScheduleFiring]:
        """The latest firings of the schedule ``name``, newest first
        (:class:`~zart.ScheduleNotFound` when there is no such schedule)."""
        async with self.store.reading() as db:
            if await db.run(schedules_repo.get_schedule, name) is None:
                raise ScheduleNotFound(name)
        async with self.store.reading() as db:
            return await db.run(schedules_repo.list_firings, name, limit=limit)

    async def skip_sleep(
        self, execution_id: str, step_name: str, triggered_by: str | None = None
    ) -> None:
        """End the sleep ``step_name`` of a waiting execution now: the handler resumes as if
        it had slept its time. :class:`~zart.ExecutionNotFound`, :class:`~zart.StepNotFound`
        (no such sleep waiting in the current run) or :class:`~zart.InvalidExecutionState`
        (the execution does not wait), changing nothing."""
        now = self.clock.now()
        async with self.store.transaction() as db:
            execution = await db.run(executions_repo.get_execution, execution_id)
            if execution is None:
                raise ExecutionNotFound(execution_id)
            if execution.status is not ExecutionStatus.WAITING:
                raise InvalidExecutionState(
                    execution_id, f"it is {execution.status.value}, not waiting on a sleep"
                )
            skipped = await db.run(
                timers_repo.bring_sleep_forward,
                execution_id=execution_id,
                run_id=execution.run_id,
                name=step_name,
                now=now,
            )
            if not skipped:
                raise StepNotFound(execution_id, step_name)
            await db.run(wakeups.notify, self.runtime.channel, execution.task_name)
        for worker in self._workers:
            worker.wake()
        log(
            "sleep_skipped",
            "sleep skipped",
            execution_id=execution_id,
            step_name=step_name,
            triggered_by=triggered_by,
        )
