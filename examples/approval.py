"""Approval: a request waits up to one day for a manager's decision.

The seed's approval workflow. ``validate-request`` runs as a step; then
``zart.wait_for_event("manager-approval", timeout=timedelta(days=1), model=ApprovalDecision)``
suspends the execution: it is ``waiting``, holds no worker slot and no lease, and only the event
or its one-day deadline wakes it. An approval provisions the resource; a deadline that passes
raises ``zart.EventTimeout``, which the handler turns into an ``expired`` outcome.

It runs twice: a manager approves Ada's request three hours in; nobody answers Bob's.

The script runs on virtual time (``zart.testing.durable_test_scheduler``), so the day passes at
once; its SQLite file ``approval.db`` is kept for you to look at. In production the same
handler runs on a real scheduler and worker, and the decision arrives from wherever the manager
clicks "approve" (a web handler, say):

    async with zart.DurableScheduler("postgresql+asyncpg://app@db/app") as scheduler:
        async with scheduler.run_worker():
            execution_id = await scheduler.start(approval_workflow, request)
            ...
    # in the web handler, hours later, in any process:
    await scheduler.offer_event(execution_id, "manager-approval", decision)

    python examples/approval.py
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

import zart
from zart.testing import clock_of, durable_test_scheduler, run_to_completion, run_until_waiting

DATABASE = Path("approval.db")


class ApprovalRequest(BaseModel):
    requester: str
    resource: str


class ApprovalDecision(BaseModel):
    approved: bool
    reviewer: str
    comment: str = ""


class ApprovalOutcome(BaseModel):
    status: Literal["provisioned", "rejected", "expired"]
    detail: str


@zart.step("validate-request")
async def validate_request(request: ApprovalRequest) -> None:
    if not request.resource.strip():
        raise ValueError("a request must name a resource")
    print(f"  validate-request: {request.requester} asks for {request.resource!r}")


@zart.step("provision-resource")
async def provision_resource(resource: str) -> str:
    print(f"  provision-resource: creating {resource}")
    return f"{resource}-01"


@zart.durable("approval-workflow")
async def approval_workflow(request: ApprovalRequest) -> ApprovalOutcome:
    await validate_request(request)
    try:
        decision = await zart.wait_for_event(
            "manager-approval", timeout=timedelta(days=1), model=ApprovalDecision
        )
    except zart.EventTimeout:
        return ApprovalOutcome(status="expired", detail="no decision within 1 day")
    if not decision.approved:
        return ApprovalOutcome(status="rejected", detail=f"by {decision.reviewer}")
    resource_id = await provision_resource(request.resource)
    return ApprovalOutcome(
        status="provisioned",
        detail=f"{resource_id}, approved by {decision.reviewer}: {decision.comment}",
    )


async def main() -> None:
    async with durable_test_scheduler(f"sqlite+aiosqlite:///{DATABASE}") as scheduler:
        clock = clock_of(scheduler)
        print(f"virtual time starts at {clock.now():%Y-%m-%d %H:%M} UTC")

        print("\nAda's request; the manager approves it three hours later")
        ada = await scheduler.start(
            approval_workflow,
            ApprovalRequest(requester="ada", resource="gpu-cluster"),
            execution_id="approval-ada",
        )
        waiting = await run_until_waiting(scheduler, ada)
        assert waiting.claimable_at is not None  # the event's deadline wakes it at the latest
        print(
            f"  {ada}: {waiting.status.value} for 'manager-approval'"
            f" until {waiting.claimable_at:%Y-%m-%d %H:%M} UTC"
        )
        clock.advance(timedelta(hours=3))
        decision = ApprovalDecision(approved=True, reviewer="grace", comment="go ahead")
        await scheduler.offer_event(ada, "manager-approval", decision)
        print(f"  {clock.now():%Y-%m-%d %H:%M} UTC: grace approves (offer_event)")
        ada_outcome: ApprovalOutcome = await run_to_completion(scheduler, ada)

        print("\nBob's request; nobody answers")
        bob = await scheduler.start(
            approval_workflow,
            ApprovalRequest(requester="bob", resource="test-db"),
            execution_id="approval-bob",
        )
        bob_outcome: ApprovalOutcome = await run_to_completion(scheduler, bob)
        print(f"  the deadline passed; virtual time is now {clock.now():%Y-%m-%d %H:%M} UTC")

    print("\nOutcomes:")
    print(f"{ada}: {ada_outcome.status} ({ada_outcome.detail})")
    print(f"{bob}: {bob_outcome.status} ({bob_outcome.detail})")


if __name__ == "__main__":
    for suffix in ("", "-wal", "-shm"):  # start from an empty database on every run
        Path(f"{DATABASE}{suffix}").unlink(missing_ok=True)
    asyncio.run(main())
