"""Plain factory functions for repository-level tests, and :func:`run`: an operation on a
caller's connection (``AsyncConnection``) or on a store's own connections (``Store``, what the
worker runs)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from zart.models import StepKind, StepStatus
from zart.repositories import claims, executions, steps
from zart.repositories.executors import ConnectionExecutor, OperationFunction
from zart.repositories.records import ClaimedExecution, ExecutionRecord, Lease
from zart.repositories.store import Store

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)

P = ParamSpec("P")
T = TypeVar("T")

Target = AsyncConnection | Store | ConnectionExecutor


async def run_on(
    target: Target, operation: OperationFunction[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run ``operation`` on ``target``: a connection's transaction, or a store's own
    connections (the worker's path)."""
    if isinstance(target, AsyncConnection):
        target = ConnectionExecutor(target)
    return await target.run(operation, *args, **kwargs)


def new_id(prefix: str = "ex") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def new_execution(
    conn: Target,
    *,
    execution_id: str | None = None,
    task_name: str = "onboarding",
    payload: Any = None,
    now: datetime = T0,
    claimable_at: datetime | None = None,
) -> ExecutionRecord:
    created = await run_on(
        conn,
        executions.create_execution,
        execution_id=execution_id or new_id(),
        task_name=task_name,
        payload={"email": "a@b.c"} if payload is None else payload,
        now=now,
        claimable_at=claimable_at,
    )
    assert created.created
    return created.execution


async def claim(
    conn: Target,
    *,
    worker_id: str = "worker-a",
    task_names: tuple[str, ...] = ("onboarding",),
    limit: int = 10,
    now: datetime = T0,
    lease_timeout: timedelta = LEASE,
    takeovers: int = 0,
) -> list[ClaimedExecution]:
    """The worker's claim (it also fires the due timers of the runs it wakes and completes
    their due sleeps); with ``takeovers``, up to that many expired leases first."""
    return await run_on(
        conn,
        claims.claim_ready_executions,
        worker_id=worker_id,
        task_names=task_names,
        limit=limit,
        now=now,
        lease_timeout=lease_timeout,
        takeovers=takeovers,
    )


async def claim_only(conn: Target, execution_id: str, **kwargs: Any) -> Lease:
    claimed = await claim(conn, **kwargs)
    matching = [c.lease for c in claimed if c.execution.execution_id == execution_id]
    assert matching, f"{execution_id} was not claimed"
    return matching[0]


def completed_step(run_id: str, name: str, result: Any, position: int = 0) -> steps.StepOutcome:
    return steps.StepOutcome(
        run_id=run_id,
        name=name,
        kind=StepKind.STEP,
        status=StepStatus.COMPLETED,
        position=position,
        attempts=1,
        result=result,
        completed_at=T0,
    )


def retrying_step(
    run_id: str, name: str, error: Any, wake_at: datetime, attempts: int = 1
) -> steps.StepOutcome:
    """A step whose attempt failed with ``error`` and that waits for its retry at ``wake_at``."""
    return steps.StepOutcome(
        run_id=run_id,
        name=name,
        kind=StepKind.STEP,
        status=StepStatus.WAITING,
        position=0,
        attempts=attempts,
        error=error,
        wake_at=wake_at,
    )


@contextlib.asynccontextmanager
async def worker_store(engine: AsyncEngine) -> AsyncIterator[Store]:
    """A store of ``engine`` with its worker's connections open: what a worker runs on."""
    store = Store.for_engine(engine)
    store.open()
    try:
        yield store
    finally:
        await store.close()
