"""A run failed on an event's payload is repaired by retry-step of the wait and a new event
(both backends): the wait's failure is stored, retry-step re-opens it, the refused event is
gone and the corrected one completes the execution; earlier steps do not run again."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, model_validator

import zart
from tests.factories import run_on
from tests.integration.runtime_helpers import count, times, wait_for_status
from zart import DurableScheduler
from zart.models import StepStatus
from zart.repositories import events as events_repo

WORKER = {"poll_interval": 0.02, "lease_timeout": 5.0, "claim_ahead": 0.0}


class Verdict(BaseModel):
    approved: bool
    reviewer: str

    @model_validator(mode="after")
    def _signed(self) -> Verdict:  # what no JSON schema says: only the handler can refuse it
        if self.reviewer == "nobody":
            raise ValueError("a verdict needs a real reviewer")
        return self


@zart.step("repair-prepare")
async def prepare() -> None:
    count("repair-prepare")


@zart.durable("repair-approval")
async def repair_approval(data: dict[str, Any]) -> str:
    await prepare()
    verdict = await zart.wait_for_event("verdict", model=Verdict)
    return f"{'approved' if verdict.approved else 'rejected'} by {verdict.reviewer}"


async def _steps(scheduler: DurableScheduler, execution_id: str) -> dict[str, Any]:
    detail = await scheduler.execution_detail(execution_id)
    return {item.step.name: item.step for item in detail.steps}


async def test_a_run_failed_on_an_event_is_repaired_by_retry_step_and_a_new_event(
    suspending: DurableScheduler,
) -> None:
    async with suspending.run_worker(**WORKER):
        execution_id = await suspending.start(repair_approval, {})
        await wait_for_status(suspending, execution_id, zart.ExecutionStatus.WAITING)
        # Fits the schema, so it passes the door; the model's validator refuses it.
        await suspending.offer_event(
            execution_id, "verdict", {"approved": True, "reviewer": "nobody"}
        )
        with pytest.raises(zart.ExecutionFailed) as failed:
            await suspending.wait(execution_id, timeout=10)
        assert failed.value.error["step"] == "verdict"
        assert "a real reviewer" in failed.value.error["message"]
        assert (await _steps(suspending, execution_id))["verdict"].status is StepStatus.FAILED

        retried = await suspending.retry_step(execution_id, "verdict")
        assert retried.step_name == "verdict"
        await wait_for_status(suspending, execution_id, zart.ExecutionStatus.WAITING)
        async with suspending.engine.connect() as conn:  # the refused event is gone
            assert await run_on(conn, events_repo.list_events, execution_id) == []
        # The re-opened wait still checks offers against its model at the door.
        with pytest.raises(zart.EventDoesNotFit):
            await suspending.offer_event(execution_id, "verdict", {"approved": "maybe"})
        await suspending.offer_event(execution_id, "verdict", {"approved": True, "reviewer": "ana"})
        assert await suspending.wait(execution_id, timeout=10) == "approved by ana"

    assert times(execution_id, "repair-prepare") == 1  # the step before the wait kept its outcome
    steps = await _steps(suspending, execution_id)
    assert steps["verdict"].status is StepStatus.COMPLETED
