"""The safe-deploy routes of the HTTP API: an operator's answer to an execution held on a
replay divergence (``docs/versioning.md``). ``POST .../resume-diverged`` releases it (it
replays again), ``POST .../fail-diverged`` fails it; either answers 409
(``invalid_execution_state``) when no divergence holds it, 404 for an unknown execution, and
changes nothing then. The verdict itself is the ``divergence`` of the execution's detail."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path

from zart.scheduler import DurableScheduler
from zart.wire import NO_NUL, Execution, Name, PauseRule, Wire

ADMIN = "/zart/admin/v1"
ExecutionId = Annotated[str, Path(min_length=1, max_length=255, pattern=NO_NUL)]


class DivergedAnswer(Wire):
    """Who answers a divergence (kept in the hold's history)."""

    triggered_by: Name | None = None


def versioning_routes(
    router: APIRouter,
    scheduler: DurableScheduler,
    errors: Callable[..., dict[int | str, dict[str, Any]]],
) -> None:
    @router.post(
        f"{ADMIN}/executions/{{execution_id}}/resume-diverged",
        tags=["admin"],
        responses=errors(404, 409),
    )
    async def resume_diverged(
        execution_id: ExecutionId, body: Annotated[DivergedAnswer | None, Body()] = None
    ) -> PauseRule:
        """Release an execution held on a replay divergence: it replays again at once (and is
        held again if it still diverges). Answers the removed hold."""
        by = None if body is None else body.triggered_by
        return PauseRule.of(await scheduler.resume_diverged(execution_id, by))

    @router.post(
        f"{ADMIN}/executions/{{execution_id}}/fail-diverged",
        tags=["admin"],
        responses=errors(404, 409),
    )
    async def fail_diverged(
        execution_id: ExecutionId, body: Annotated[DivergedAnswer | None, Body()] = None
    ) -> Execution:
        """Fail an execution held on a replay divergence (error kind
        ``non_deterministic_replay``)."""
        by = None if body is None else body.triggered_by
        return Execution.of(await scheduler.fail_diverged(execution_id, by))
