"""The HTTP API as a FastAPI router (DESIGN section 4), mountable under any prefix.

Thin edges: each handler parses, calls one ``DurableScheduler`` method and formats the
answer. Errors are answered with the envelope of :mod:`zart.api.errors`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, cast

from fastapi import APIRouter, Body, Depends, Path, Query, Response
from fastapi.security import HTTPBearer

from zart.api.auth import configured_token, guarded_route
from zart.api.dashboard import dashboard_router
from zart.api.errors import ApiError
from zart.api.messages import message_routes
from zart.api.operations import inspection_routes
from zart.api.queues import queue_routes
from zart.api.streams import stream_routes
from zart.api.versioning import versioning_routes
from zart.errors import ExecutionNotFound
from zart.models import ExecutionStatus
from zart.models.names import MAX_TAGS, parse_tags
from zart.scheduler import DurableScheduler
from zart.wire import (
    NO_NUL,
    BulkAnswer,
    BulkCancel,
    BulkFilter,
    BulkRestart,
    BulkRetryStep,
    CreatePauseRule,
    Detail,
    ErrorEnvelope,
    EventAccepted,
    Execution,
    PauseRule,
    Prune,
    PruneAnswer,
    Rerun,
    RerunAnswer,
    Restart,
    RestartAnswer,
    RetryStep,
    RetryStepAnswer,
    Run,
    SortOrder,
    StartExecution,
    Stats,
    UtcTime,
    sort_field,
)

#: Largest request body accepted by default (the default payload limit plus room for JSON).
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024 + 64 * 1024
#: Longest ``wait`` a request may ask for.
MAX_WAIT_SECONDS = 300.0

ExecutionId = Annotated[str, Path(min_length=1, max_length=255, pattern=NO_NUL)]
EventName = Annotated[str, Path(min_length=1, max_length=255, pattern=NO_NUL)]
RuleId = Annotated[str, Path(min_length=1, max_length=255, pattern=NO_NUL)]
QueryName = Annotated[str | None, Query(min_length=1, max_length=255, pattern=NO_NUL)]
#: The total of a list's matches, beside the plain array the original answers.
TOTAL_COUNT_HEADER = "X-Total-Count"


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorEnvelope} for status in statuses}


def create_router(
    scheduler: DurableScheduler,
    *,
    api_token: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    dashboard: bool = False,
) -> APIRouter:
    """The Zart HTTP API over ``scheduler``: ``/api/v1/...`` and ``/zart/admin/v1/...``.

    Include it in any FastAPI app, under any prefix (``app.include_router(router,
    prefix="/ops")``). ``api_token`` (default: the ``ZART_API_TOKEN`` environment variable;
    ``""`` turns auth off) makes every route require ``Authorization: Bearer <token>``.
    Bodies over ``max_body_bytes`` are refused with 413. ``dashboard=True`` adds the web
    dashboard at the prefix's ``/`` (``/ops/``), behind the same token (a sign-in form).
    """
    token = configured_token(api_token)
    router = APIRouter(
        route_class=guarded_route(token, max_body_bytes),
        # Describes the bearer scheme in the OpenAPI document (securitySchemes); the token
        # itself is checked by the route class, before the body is read.
        dependencies=[Depends(HTTPBearer(auto_error=False))] if token else [],
        responses=_errors(401, 413, 422, 503),
    )
    _execution_routes(router, scheduler)
    _admin_routes(router, scheduler)
    queue_routes(router, scheduler, _errors)
    versioning_routes(router, scheduler, _errors)
    inspection_routes(router, scheduler)
    stream_routes(router, scheduler)
    message_routes(router, scheduler, _errors)
    if dashboard:
        router.include_router(dashboard_router(token))
    return router


def _execution_routes(router: APIRouter, scheduler: DurableScheduler) -> None:
    @router.get("/api/v1/executions", tags=["executions"])
    async def list_executions(
        response: Response,
        status: Annotated[ExecutionStatus | None, Query()] = None,
        task_name: Annotated[QueryName, Query(alias="taskName")] = None,
        created_from: Annotated[UtcTime | None, Query(alias="from")] = None,
        created_to: Annotated[UtcTime | None, Query(alias="to")] = None,
        search: Annotated[str | None, Query(max_length=255, pattern=NO_NUL)] = None,
        tag: Annotated[list[str] | None, Query(max_length=MAX_TAGS)] = None,
        sort_by: Annotated[str | None, Query(alias="sortBy", max_length=64)] = None,
        sort_order: Annotated[SortOrder, Query(alias="sortOrder")] = "desc",
        limit: Annotated[int, Query(ge=1, le=1000)] = 20,
        offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    ) -> list[Execution]:
        """A page of executions (a plain array, as the original answers), newest first unless
        sorted otherwise; the number of matches is in the ``X-Total-Count`` header. ``sortBy``:
        ``scheduled_at``, ``task_name``, ``status``, ``completed_at`` or their camelCase; any
        other value sorts by scheduled time, as the original does. ``tag=key:value``
        (repeatable): only executions carrying every tag named."""
        page = await scheduler.list_executions(
            status=status,
            task_name=task_name,
            created_from=created_from,
            created_to=created_to,
            search=search,
            tags=parse_tags(tag or (), ":"),
            sort_by=sort_field(sort_by),
            descending=sort_order == "desc",
            limit=limit,
            offset=offset,
        )
        response.headers[TOTAL_COUNT_HEADER] = str(page.total)
        return [Execution.of(r) for r in page.items]

    @router.post(
        "/api/v1/executions",
        status_code=201,
        tags=["executions"],
        responses={200: {"model": Execution}, **_errors(404, 409)},
    )
    async def start_execution(body: StartExecution, response: Response) -> Execution:
        """Start an execution (201). The same ``executionId`` with the same task and payload
        answers 200 with the existing one; with a different one, 409. A singleton or
        debounced start (``singletonKey``; ``debounce`` and ``debounceKey``) answers 201 with
        the execution it joined or started: its ``durableExecutionId`` tells which."""
        existed = False
        if body.execution_id is not None:
            try:
                await scheduler.status(body.execution_id)
                existed = True
            except ExecutionNotFound:
                pass
        execution_id = await scheduler.start(
            body.task_name,
            body.payload,
            execution_id=body.execution_id,
            tags=body.tags,
            # Checked there, with the Python API's messages (any JSON value is passed on).
            queue=cast(Any, body.queue),
            partition_key=cast(Any, body.partition_key),
            priority=cast(Any, body.priority),
            singleton_key=cast(Any, body.singleton_key),
            debounce=cast(Any, body.debounce),
            debounce_key=cast(Any, body.debounce_key),
        )
        if existed:
            response.status_code = 200
        return Execution.of(await scheduler.status(execution_id))

    @router.get("/api/v1/executions/{execution_id}", tags=["executions"], responses=_errors(404))
    async def get_execution(execution_id: ExecutionId) -> Execution:
        return Execution.of(await scheduler.status(execution_id))

    @router.post(
        "/api/v1/executions/{execution_id}/cancel",
        status_code=204,
        tags=["executions"],
        responses=_errors(404, 409),
    )
    async def cancel_execution(execution_id: ExecutionId) -> Response:
        """Cancel (204); 409 when the execution had already finished."""
        if not await scheduler.cancel(execution_id):
            raise ApiError(409, "execution_terminal", f"execution {execution_id!r} has finished")
        return Response(status_code=204)

    @router.get(
        "/api/v1/executions/{execution_id}/wait",
        tags=["executions"],
        responses=_errors(404, 504),
    )
    async def wait_execution(
        execution_id: ExecutionId,
        timeout_secs: Annotated[float, Query(alias="timeoutSecs", ge=0, le=MAX_WAIT_SECONDS)] = 30,
    ) -> Execution:
        """The execution once it is completed, failed or cancelled; 504 after
        ``timeoutSecs`` (it keeps running)."""
        return Execution.of(await scheduler.wait_finished(execution_id, timeout_secs))

    @router.post(
        "/api/v1/events/{execution_id}/{event_name}",
        status_code=202,
        tags=["events"],
        responses=_errors(404, 409),
    )
    async def offer_event(
        execution_id: ExecutionId,
        event_name: EventName,
        payload: Annotated[Any, Body()] = None,
    ) -> EventAccepted:
        """Deliver the event (the body is its payload): 202 with a small JSON body; 409 when
        the execution takes no more events or already has this one."""
        await scheduler.offer_event(execution_id, event_name, payload)
        return EventAccepted(durable_execution_id=execution_id, event=event_name, payload=payload)

    @router.get("/api/v1/stats", tags=["executions"])
    async def stats() -> Stats:
        """How many executions are in each status (``running`` counts the waiting ones too,
        ``waiting`` how many of them wait)."""
        counts = await scheduler.stats()
        return Stats.of(counts)


def _admin_routes(router: APIRouter, scheduler: DurableScheduler) -> None:  # noqa: C901
    admin = "/zart/admin/v1"

    @router.get(
        f"{admin}/executions/{{execution_id}}/detail", tags=["admin"], responses=_errors(404)
    )
    async def execution_detail(
        execution_id: ExecutionId,
        run_id: Annotated[QueryName, Query(alias="runId")] = None,
    ) -> Detail:
        """The execution, its runs and the steps (with attempts) of ``runId`` (default: the
        current run)."""
        return Detail.of(await scheduler.execution_detail(execution_id, run_id))

    @router.get(f"{admin}/executions/{{execution_id}}/runs", tags=["admin"], responses=_errors(404))
    async def execution_runs(execution_id: ExecutionId) -> list[Run]:
        """Every run of the execution, first run first."""
        return [Run.of(r) for r in (await scheduler.execution_detail(execution_id)).runs]

    @router.post(
        f"{admin}/executions/{{execution_id}}/retry-step",
        tags=["admin"],
        responses=_errors(404, 409),
    )
    async def retry_step(execution_id: ExecutionId, body: RetryStep) -> RetryStepAnswer:
        """Run a failed step of a failed execution once more, in its current run."""
        retried = await scheduler.retry_step(execution_id, body.step_name, body.triggered_by)
        return RetryStepAnswer(new_task_id=retried.task_id)

    @router.post(
        f"{admin}/executions/{{execution_id}}/restart", tags=["admin"], responses=_errors(404)
    )
    async def restart(
        execution_id: ExecutionId, body: Annotated[Restart | None, Body()] = None
    ) -> RestartAnswer:
        """Start the execution over in a new run (with a new payload, if given)."""
        body = body or Restart()
        run = await scheduler.restart(execution_id, body.payload, body.triggered_by)
        return RestartAnswer(new_run_id=run.run_id)

    @router.post(
        f"{admin}/executions/{{execution_id}}/rerun", tags=["admin"], responses=_errors(404)
    )
    async def rerun(execution_id: ExecutionId, body: Rerun) -> RerunAnswer:
        """A new run keeping the ``preserveSteps`` outcomes; every other step runs again."""
        new = await scheduler.rerun(
            execution_id, body.rerun_steps, body.preserve_steps, body.triggered_by
        )
        return RerunAnswer(new_run_number=new.run.run_index, effective_rerun=list(new.rerun_steps))

    @router.post(f"{admin}/bulk/cancel", tags=["admin"], responses=_errors(422))
    async def bulk_cancel(body: BulkCancel) -> BulkAnswer:
        """Cancel every unfinished execution that matches (each as its own cancel, its
        ``on_cancel`` included); ``dryRun`` only counts them."""
        return BulkAnswer.of(await scheduler.cancel_many(status=body.status, **_bulk_filter(body)))

    @router.post(f"{admin}/bulk/restart", tags=["admin"], responses=_errors(422))
    async def bulk_restart(body: BulkRestart) -> BulkAnswer:
        """Restart every finished execution that matches (``status``: ``failed`` unless
        given), each in a new run; ``dryRun`` only counts them."""
        restarted = await scheduler.restart_many(
            status=body.status, triggered_by=body.triggered_by, **_bulk_filter(body)
        )
        return BulkAnswer.of(restarted)

    @router.post(f"{admin}/bulk/retry-step", tags=["admin"], responses=_errors(422))
    async def bulk_retry_step(body: BulkRetryStep) -> BulkAnswer:
        """Run the failed step ``stepName`` once more in every failed execution that matches;
        ``dryRun`` only counts them."""
        retried = await scheduler.retry_step_many(
            body.step_name, triggered_by=body.triggered_by, **_bulk_filter(body)
        )
        return BulkAnswer.of(retried)

    @router.post(f"{admin}/prune", tags=["admin"], responses=_errors(422))
    async def prune(body: Prune) -> PruneAnswer:
        """Delete the finished executions older than ``olderThan`` (``30d``), with all their
        rows; ``dryRun`` only counts them."""
        pruned = await scheduler.prune(
            body.older_than, status=body.status, task_name=body.task_name, dry_run=body.dry_run
        )
        return PruneAnswer.of(pruned)

    @router.get(f"{admin}/pause", tags=["admin"])
    async def list_pause_rules(
        include_deleted: Annotated[bool, Query(alias="includeDeleted")] = False,
    ) -> list[PauseRule]:
        """The active pause rules (every rule, removed and expired too, with
        ``includeDeleted``)."""
        rules = await scheduler.list_pause_rules(include_inactive=include_deleted)
        return [PauseRule.of(r) for r in rules]

    @router.post(f"{admin}/pause", status_code=201, tags=["admin"])
    async def create_pause_rule(body: CreatePauseRule) -> PauseRule:
        """Hold back matching steps until the rule is removed or expires (enforced)."""
        expires_at = body.expires_at
        if body.expires_in_secs is not None:
            if expires_at is not None:
                raise ApiError(422, "invalid_payload", "give expiresAt or expiresInSecs, not both")
            expires_at = scheduler.clock.now() + timedelta(seconds=body.expires_in_secs)
        rule = await scheduler.pause(
            execution_id=body.execution_id,
            task_name=body.task_name,
            step_pattern=body.step_pattern,
            expires_at=expires_at,
            reason=body.reason,
            triggered_by=body.triggered_by,
        )
        return PauseRule.of(rule)

    async def remove(rule_id: str, triggered_by: str | None) -> Response:
        await scheduler.remove_pause_rule(rule_id, triggered_by)
        return Response(status_code=204)

    @router.delete(
        f"{admin}/pause/{{rule_id}}", status_code=204, tags=["admin"], responses=_errors(404)
    )
    async def remove_pause_rule(
        rule_id: RuleId, triggered_by: Annotated[QueryName, Query(alias="triggeredBy")] = None
    ) -> Response:
        """Remove the rule (kept for the audit trail); the executions it held resume."""
        return await remove(rule_id, triggered_by)

    @router.post(
        f"{admin}/pause/{{rule_id}}", status_code=204, tags=["admin"], responses=_errors(404)
    )
    async def remove_pause_rule_by_post(
        rule_id: RuleId, triggered_by: Annotated[QueryName, Query(alias="triggeredBy")] = None
    ) -> Response:
        """The original server's way to remove a rule; the same as ``DELETE``."""
        return await remove(rule_id, triggered_by)


def _bulk_filter(body: BulkFilter) -> dict[str, Any]:
    return {
        "task_name": body.task_name,
        "tags": body.tags,
        "created_from": body.created_from,
        "created_to": body.created_to,
        "dry_run": body.dry_run,
    }
