"""Admin operations through DurableScheduler: retry a failed step, restart, selective rerun,
and pause rules that hold steps back (enforced), on both backends."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

import zart
from tests.integration.runtime_helpers import FAST_WORKER, count, times
from zart import DurableScheduler
from zart.models import ExecutionStatus, RunTrigger, StepStatus, TimerRow, table_of
from zart.repositories.pause_rules import hold_name

#: execution ids whose "admin-charge" step fails
declining: set[str] = set()


@zart.step("admin-lookup")
async def lookup(email: str) -> str:
    count("lookup")
    return f"user:{email}"


@zart.step("admin-charge")
async def charge(user: str) -> str:
    count("charge")
    if zart.context().execution_id in declining:
        raise ValueError("card declined")
    return f"charged {user}"


@zart.step("admin-notify")
async def notify(user: str) -> str:
    return f"notified {user} #{count('notify')}"


@zart.durable("admin-flow")
async def flow(data: dict[str, Any]) -> dict[str, Any]:
    user = await lookup(data["email"])
    charged = await charge(user)
    notified = await notify(user)
    return {"user": user, "charged": charged, "notified": notified}


async def _failed_execution(scheduler: DurableScheduler) -> str:
    execution_id = str(uuid.uuid4())
    declining.add(execution_id)
    await scheduler.start(flow, {"email": "a@b.c"}, execution_id=execution_id)
    record = await scheduler.wait_finished(execution_id, timeout=10)
    assert record.status is ExecutionStatus.FAILED
    return execution_id


async def _until_status(scheduler: DurableScheduler, execution_id: str, status: str) -> None:
    for _ in range(1000):
        if (await scheduler.status(execution_id)).status == status:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{execution_id} never became {status}")


async def test_a_failed_step_retried_succeeds_in_the_same_run(scheduler: DurableScheduler) -> None:
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await _failed_execution(scheduler)
        declining.discard(execution_id)
        retried = await scheduler.retry_step(execution_id, "admin-charge", triggered_by="ops")
        result = await scheduler.wait(execution_id, timeout=10)

    assert result["charged"] == "charged user:a@b.c"
    assert retried.step_name == "admin-charge"
    assert retried.attempt_number == 1
    assert retried.task_id.endswith(":admin-charge:1")
    assert times(execution_id, "lookup") == 1  # replayed from the store, not run again
    assert times(execution_id, "charge") == 2
    detail = await scheduler.execution_detail(execution_id)
    assert len(detail.runs) == 1
    assert detail.runs[0].status is ExecutionStatus.COMPLETED
    charged = next(s for s in detail.steps if s.step.name == "admin-charge")
    assert charged.step.status is StepStatus.COMPLETED
    assert [(a.attempt_number, a.status.value) for a in charged.attempts] == [
        (0, "failed"),
        (1, "succeeded"),
    ]


async def test_retry_step_refuses_what_did_not_fail(scheduler: DurableScheduler) -> None:
    async with scheduler.run_worker(**FAST_WORKER):
        done = await scheduler.start(flow, {"email": "ok@b.c"})
        await scheduler.wait(done, timeout=10)
        failed = await _failed_execution(scheduler)

    with pytest.raises(zart.InvalidExecutionState, match="completed, not a failed step"):
        await scheduler.retry_step(done, "admin-charge")
    with pytest.raises(zart.InvalidExecutionState, match="not a failed step"):
        await scheduler.retry_step(failed, "admin-lookup")
    with pytest.raises(zart.StepNotFound):
        await scheduler.retry_step(failed, "admin-notify")
    with pytest.raises(zart.ExecutionNotFound):
        await scheduler.retry_step("no-such-execution", "admin-charge")
    assert (await scheduler.status(failed)).status is ExecutionStatus.FAILED


async def test_a_rerun_keeps_the_preserved_steps_results(scheduler: DurableScheduler) -> None:
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await scheduler.start(flow, {"email": "r@b.c"})
        first = await scheduler.wait(execution_id, timeout=10)
        rerun = await scheduler.rerun(
            execution_id, rerun_steps=["admin-notify"], preserve_steps=["admin-lookup"]
        )
        second = await scheduler.wait(execution_id, timeout=10)

    assert rerun.run.run_index == 2
    assert rerun.run.trigger is RunTrigger.SELECTIVE_RERUN
    assert rerun.preserved_steps == ("admin-lookup",)
    assert rerun.rerun_steps == ("admin-charge", "admin-notify")
    assert first["notified"].endswith("#1")
    assert second["notified"].endswith("#2")
    assert times(execution_id, "lookup") == 1
    assert times(execution_id, "charge") == 2
    detail = await scheduler.execution_detail(execution_id)
    assert [(r.run_index, r.status.value) for r in detail.runs] == [
        (1, "completed"),
        (2, "completed"),
    ]
    assert detail.run_id == rerun.run.run_id
    kept = next(s for s in detail.steps if s.step.name == "admin-lookup")
    assert [a.status.value for a in kept.attempts] == ["succeeded"]  # attempts copied too
    old = await scheduler.execution_detail(execution_id, run_id=detail.runs[0].run_id)
    assert len(old.steps) == 3  # the old run's history is untouched


async def test_a_rerun_with_bad_step_names_changes_nothing(scheduler: DurableScheduler) -> None:
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await scheduler.start(flow, {"email": "x@b.c"})
        await scheduler.wait(execution_id, timeout=10)

    with pytest.raises(zart.InvalidPayload, match="both"):
        await scheduler.rerun(execution_id, ["admin-lookup"], ["admin-lookup"])
    with pytest.raises(zart.InvalidPayload, match="no step 'nope'"):
        await scheduler.rerun(execution_id, [], ["nope"])
    detail = await scheduler.execution_detail(execution_id)
    assert len(detail.runs) == 1
    assert detail.execution.status is ExecutionStatus.COMPLETED


async def test_a_restart_runs_everything_again_with_a_new_payload(
    scheduler: DurableScheduler,
) -> None:
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await _failed_execution(scheduler)
        declining.discard(execution_id)
        run = await scheduler.restart(execution_id, {"email": "new@b.c"}, triggered_by="ops")
        result = await scheduler.wait(execution_id, timeout=10)

    assert (run.run_index, run.trigger, run.triggered_by) == (2, RunTrigger.RESTART, "ops")
    assert result["user"] == "user:new@b.c"
    assert times(execution_id, "lookup") == 2
    record = await scheduler.status(execution_id)
    assert record.payload == {"email": "new@b.c"}
    assert record.run_id == run.run_id
    runs = (await scheduler.execution_detail(execution_id)).runs
    assert [r.status.value for r in runs] == ["failed", "completed"]


async def test_a_paused_step_is_held_until_its_rule_is_removed(
    scheduler: DurableScheduler,
) -> None:
    rule = await scheduler.pause(
        task_name="admin-flow", step_pattern="admin-ch*", reason="psp down"
    )
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await scheduler.start(flow, {"email": "p@b.c"})
        await _until_status(scheduler, execution_id, "waiting")
        assert times(execution_id, "lookup") == 1
        assert times(execution_id, "charge") == 0  # held: it never started
        assert [r.rule_id for r in await scheduler.list_pause_rules()] == [rule.rule_id]

        removed = await scheduler.remove_pause_rule(rule.rule_id, triggered_by="ops")
        result = await scheduler.wait(execution_id, timeout=10)

    assert removed.deleted_by == "ops"
    assert result["charged"] == "charged user:p@b.c"
    assert times(execution_id, "charge") == 1
    assert await scheduler.list_pause_rules() == []
    assert [r.rule_id for r in await scheduler.list_pause_rules(include_inactive=True)] == [
        rule.rule_id
    ]
    with pytest.raises(zart.PauseRuleNotFound):
        await scheduler.remove_pause_rule(rule.rule_id)


async def test_a_paused_step_runs_once_its_rule_expires(scheduler: DurableScheduler) -> None:
    expires_at = scheduler.clock.now() + timedelta(seconds=1)
    rule = await scheduler.pause(
        task_name="admin-flow", step_pattern="admin-charge", expires_at=expires_at
    )
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await scheduler.start(flow, {"email": "e@b.c"})
        await scheduler.wait(execution_id, timeout=10)

    async with scheduler.engine.connect() as conn:
        holds = list(
            await conn.execute(
                select(table_of(TimerRow)).where(table_of(TimerRow).c.execution_id == execution_id)
            )
        )
    assert [h.name for h in holds] == [hold_name(rule.rule_id)]
    detail = await scheduler.execution_detail(execution_id)
    charged = next(s for s in detail.steps if s.step.name == "admin-charge")
    assert charged.attempts[0].started_at >= expires_at  # it started only after the expiry
    assert await scheduler.list_pause_rules() == []  # expired rules are not active


async def test_a_pause_rule_needs_a_scope_and_a_future_expiry(scheduler: DurableScheduler) -> None:
    with pytest.raises(zart.InvalidPayload, match="needs an execution id"):
        await scheduler.pause()
    with pytest.raises(zart.InvalidPayload, match="future"):
        await scheduler.pause(task_name="x", expires_at=scheduler.clock.now())
    assert await scheduler.list_pause_rules(include_inactive=True) == []
