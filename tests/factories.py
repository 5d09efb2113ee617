"""Plain factory functions for repository-level tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from zart.models import StepKind, StepStatus
from zart.repositories import executions, steps
from zart.repositories.records import ClaimedExecution, ExecutionRecord, Lease

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def new_id(prefix: str = "ex") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def new_execution(
    conn: AsyncConnection,
    *,
    execution_id: str | None = None,
    task_name: str = "onboarding",
    payload: Any = None,
    now: datetime = T0,
    claimable_at: datetime | None = None,
) -> ExecutionRecord:
    created = await executions.create_execution(
        conn,
        execution_id=execution_id or new_id(),
        task_name=task_name,
        payload={"email": "a@b.c"} if payload is None else payload,
        now=now,
        claimable_at=claimable_at,
    )
    assert created.created
    return created.execution


async def claim(
    conn: AsyncConnection,
    *,
    worker_id: str = "worker-a",
    task_names: tuple[str, ...] = ("onboarding",),
    limit: int = 10,
    now: datetime = T0,
    lease_timeout: timedelta = LEASE,
) -> list[ClaimedExecution]:
    return await executions.claim_ready_executions(
        conn,
        worker_id=worker_id,
        task_names=task_names,
        limit=limit,
        now=now,
        lease_timeout=lease_timeout,
    )


async def claim_only(conn: AsyncConnection, execution_id: str, **kwargs: Any) -> Lease:
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
