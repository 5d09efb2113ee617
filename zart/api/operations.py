"""The routes the dashboard needs beyond the original's API, under ``/zart/admin/v1``:
workers, the task catalogue (with each input's JSON schema), activity over a window, what
waiting executions wait for, schedules (list, add, pause, resume, remove, firings) and
skipping a sleep. Thin like :mod:`zart.api.routes`: parse, call one scheduler method, format."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from zart.api.views import (
    ActivityAnswer,
    AddSchedule,
    Firing,
    PendingWait,
    Schedule,
    SkipSleep,
    Task,
    Worker,
)
from zart.scheduler import DurableScheduler
from zart.schedules.plans import DEFAULT_CATCHUP, DEFAULT_OVERLAP
from zart.wire import NO_NUL, ErrorEnvelope

ADMIN = "/zart/admin/v1"
ExecutionId = Annotated[str, Path(min_length=1, max_length=255, pattern=NO_NUL)]
ScheduleName = Annotated[str, Path(min_length=1, max_length=255, pattern=NO_NUL)]
#: The most executions one ``waits`` request may ask about (a list page's worth).
MAX_WAIT_QUERIES = 200


def _errors(*statuses: int) -> dict[int | str, dict[str, object]]:
    return {status: {"model": ErrorEnvelope} for status in statuses}


def inspection_routes(router: APIRouter, scheduler: DurableScheduler) -> None:
    @router.get(f"{ADMIN}/workers", tags=["admin"])
    async def list_workers() -> list[Worker]:
        """The workers alive, and those stopped or silent within the last hour, with the
        running executions each holds."""
        return [Worker.of(w) for w in await scheduler.list_workers()]

    @router.get(f"{ADMIN}/tasks", tags=["admin"])
    async def list_tasks() -> list[Task]:
        """The task names this server registered or a live worker runs, with the JSON schema
        of each input the server knows (what a start form is built from)."""
        return [Task.of(t) for t in await scheduler.tasks()]

    @router.get(f"{ADMIN}/activity", tags=["admin"], responses=_errors(422))
    async def activity(
        window_secs: Annotated[float, Query(alias="windowSecs", ge=60, le=31 * 86400)] = 3600,
    ) -> ActivityAnswer:
        """Starts, completions and failures over the last ``windowSecs`` (24 buckets), and per
        task the executions that finished in it: how many, how many failed, how long."""
        return ActivityAnswer.of(await scheduler.activity(timedelta(seconds=window_secs)))

    @router.get(f"{ADMIN}/waits", tags=["admin"], responses=_errors(422))
    async def pending_waits(
        run_id: Annotated[
            list[Annotated[str, Query(max_length=255, pattern=NO_NUL)]],
            Query(alias="runId", min_length=1, max_length=MAX_WAIT_QUERIES),
        ],
    ) -> dict[str, list[PendingWait]]:
        """What the executions of the runs named (an ``Execution``'s ``runId``) wait for, by
        execution id: sleeps, event waits, retry back-offs; a run with nothing waiting is
        absent. One query for the lot."""
        waits = await scheduler.waits_of_runs(run_id)
        return {key: [PendingWait.of(s) for s in steps] for key, steps in waits.items()}

    @router.post(
        f"{ADMIN}/executions/{{execution_id}}/skip-sleep",
        tags=["admin"],
        status_code=204,
        responses=_errors(404, 409),
    )
    async def skip_sleep(execution_id: ExecutionId, body: SkipSleep) -> Response:
        """End a waiting execution's sleep ``stepName`` now (the handler resumes as if it had
        slept its time); 409 when the execution does not wait, 404 without such a sleep."""
        await scheduler.skip_sleep(execution_id, body.step_name, body.triggered_by)
        return Response(status_code=204)

    _schedule_routes(router, scheduler)


def _schedule_routes(router: APIRouter, scheduler: DurableScheduler) -> None:
    @router.get(f"{ADMIN}/schedules", tags=["schedules"])
    async def list_schedules() -> list[Schedule]:
        """Every schedule, by name, with its next and latest fire time."""
        return [Schedule.of(s) for s in await scheduler.list_schedules()]

    @router.post(
        f"{ADMIN}/schedules", tags=["schedules"], status_code=201, responses=_errors(404, 422)
    )
    async def add_schedule(body: AddSchedule) -> Schedule:
        """Add the schedule (or update it in place: a paused one stays paused); 422
        ``invalid_schedule`` for a bad cron expression, time zone or name."""
        added = await scheduler.add_schedule(
            body.name,
            body.task_name,
            body.cron,
            timezone=body.timezone,
            payload=body.payload,
            overlap=body.overlap or DEFAULT_OVERLAP,
            catchup=body.catchup or DEFAULT_CATCHUP,
        )
        return Schedule.of(added)

    @router.post(f"{ADMIN}/schedules/{{name}}/pause", tags=["schedules"], responses=_errors(404))
    async def pause_schedule(name: ScheduleName) -> Schedule:
        return Schedule.of(await scheduler.pause_schedule(name))

    @router.post(f"{ADMIN}/schedules/{{name}}/resume", tags=["schedules"], responses=_errors(404))
    async def resume_schedule(name: ScheduleName) -> Schedule:
        return Schedule.of(await scheduler.resume_schedule(name))

    @router.delete(
        f"{ADMIN}/schedules/{{name}}", tags=["schedules"], status_code=204, responses=_errors(404)
    )
    async def remove_schedule(name: ScheduleName) -> Response:
        """Delete the schedule and its firing history (the executions it started stay)."""
        await scheduler.remove_schedule(name)
        return Response(status_code=204)

    @router.get(f"{ADMIN}/schedules/{{name}}/firings", tags=["schedules"], responses=_errors(404))
    async def schedule_firings(
        name: ScheduleName, limit: Annotated[int, Query(ge=1, le=100)] = 20
    ) -> list[Firing]:
        """The schedule's latest firings, newest first (``executionId`` null: skipped)."""
        return [Firing.of(f) for f in await scheduler.schedule_firings(name, limit=limit)]


__all__ = ["inspection_routes"]
