"""The four calling conventions, retries, timeouts and on_failure, on both backends."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

import zart
from tests.factories import run_on
from tests.integration.runtime_helpers import FAST_WORKER, count, seen, times
from zart import DurableScheduler
from zart.models import AttemptStatus, StepStatus
from zart.repositories import steps as steps_repo


class InsufficientFunds(Exception):
    def __init__(self, balance: int, needed: int) -> None:
        super().__init__(balance, needed)
        self.balance = balance
        self.needed = needed


@zart.step("check-balance")
async def check_balance(account: str) -> int:
    count("check-balance")
    if account == "poor":
        raise InsufficientFunds(5, 10)
    return 100


@zart.step("flaky", retry="fixed(2, 10ms)")
async def flaky(fail_times: int) -> int:
    info = zart.context()
    seen[info.execution_id].append(("attempt", info.current_attempt, info.is_retry()))
    if info.current_attempt < fail_times:
        raise ConnectionError(f"attempt {info.current_attempt} failed")
    return info.current_attempt


async def _run(scheduler: DurableScheduler, handler: Any, payload: Any) -> tuple[str, Any]:
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await scheduler.start(handler, payload)
        try:
            return execution_id, await scheduler.wait(execution_id, timeout=20)
        except zart.ExecutionFailed as failed:
            return execution_id, failed


async def _steps(scheduler: DurableScheduler, execution_id: str) -> dict[str, Any]:
    record = await scheduler.status(execution_id)
    async with scheduler.engine.connect() as conn:
        found = await run_on(conn, steps_repo.list_steps, record.run_id)
        attempts = await run_on(conn, steps_repo.list_step_attempts, found)
    return {s.name: (s, attempts[s.step_id]) for s in found}


# -- fail-fast (plain await) ------------------------------------------------------------------


@zart.durable("outcomes-require")
async def require_balance(data: dict[str, str]) -> int:
    return await check_balance(data["account"])


async def test_plain_await_fails_the_execution_with_the_steps_error(
    scheduler: DurableScheduler,
) -> None:
    execution_id, failed = await _run(scheduler, require_balance, {"account": "poor"})

    assert isinstance(failed, zart.ExecutionFailed)
    assert failed.error["kind"] == "step_failed"
    assert failed.error["step"] == "check-balance"
    assert failed.error["error"]["type"].endswith("InsufficientFunds")
    step, attempts = (await _steps(scheduler, execution_id))["check-balance"]
    assert step.status is StepStatus.FAILED
    assert [a.status for a in attempts] == [AttemptStatus.FAILED]


# -- zart.step: three-way outcome ------------------------------------------------------------


@zart.durable("outcomes-match")
async def match_balance(data: dict[str, str]) -> str:
    match await zart.step(check_balance(data["account"])):
        case zart.Ok(balance):
            return f"ok:{balance}"
        case zart.BusinessErr(InsufficientFunds(balance=have, needed=need)):
            return f"short:{have}/{need}"
        case zart.ZartErr(error):
            raise error
    raise AssertionError("unreachable")


@pytest.mark.parametrize(("account", "expected"), [("rich", "ok:100"), ("poor", "short:5/10")])
async def test_zart_step_returns_a_matchable_outcome(
    scheduler: DurableScheduler, account: str, expected: str
) -> None:
    _, result = await _run(scheduler, match_balance, {"account": account})

    assert result == expected


@zart.step("always-down", retry="fixed(1, 5ms)")
async def always_down() -> None:
    count("always-down")
    raise ConnectionError("service unavailable")


@zart.durable("outcomes-zart-err")
async def zart_err(data: dict[str, Any]) -> dict[str, Any]:
    outcome = await zart.step(always_down())
    assert isinstance(outcome, zart.ZartErr)
    error = outcome.error
    assert isinstance(error, zart.RetryExhausted)
    return {"attempts": error.attempts, "last": type(error.last_error).__name__}


async def test_retries_running_out_is_a_zart_error(scheduler: DurableScheduler) -> None:
    execution_id, result = await _run(scheduler, zart_err, {})

    assert result == {"attempts": 2, "last": "ConnectionError"}
    assert times(execution_id, "always-down") == 2


# -- step_or / step_or_else ------------------------------------------------------------------


@zart.durable("outcomes-fallbacks")
async def fallbacks(data: dict[str, Any]) -> dict[str, Any]:
    blind = await zart.step_or(check_balance("poor").named("blind"), -1)
    exhausted = await zart.step_or(always_down().named("exhausted"), "default")
    computed = await zart.step_or_else(check_balance("poor").named("computed"), lambda e: -e.needed)
    fine = await zart.step_or_else(check_balance("rich").named("fine"), lambda e: 0)
    try:
        await zart.step_or_else(always_down().named("escalated"), lambda e: "swallowed")
    except zart.RetryExhausted as error:
        escalated = f"raised:{error.step}"
    return {
        "blind": blind,
        "exhausted": exhausted,
        "computed": computed,
        "fine": fine,
        "escalated": escalated,
    }


async def test_fallback_conventions(scheduler: DurableScheduler) -> None:
    _, result = await _run(scheduler, fallbacks, {})

    assert result == {
        "blind": -1,
        "exhausted": "default",
        "computed": -10,
        "fine": 100,
        "escalated": "raised:escalated",
    }


# -- retries -----------------------------------------------------------------------------------


@zart.durable("outcomes-retries")
async def retrying(data: dict[str, int]) -> int:
    return await flaky(data["fail_times"])


async def test_each_attempt_is_numbered_and_recorded(scheduler: DurableScheduler) -> None:
    execution_id, result = await _run(scheduler, retrying, {"fail_times": 2})

    assert result == 2
    assert seen[execution_id] == [("attempt", 0, False), ("attempt", 1, True), ("attempt", 2, True)]
    step, attempts = (await _steps(scheduler, execution_id))["flaky"]
    assert step.status is StepStatus.COMPLETED
    assert step.attempts == 3
    assert [(a.attempt_number, a.status) for a in attempts] == [
        (0, AttemptStatus.FAILED),
        (1, AttemptStatus.FAILED),
        (2, AttemptStatus.SUCCEEDED),
    ]
    assert attempts[0].error["message"] == "attempt 0 failed"


async def test_retries_exhausted_fail_the_execution(scheduler: DurableScheduler) -> None:
    execution_id, failed = await _run(scheduler, retrying, {"fail_times": 5})

    assert isinstance(failed, zart.ExecutionFailed)
    assert failed.error["error"]["type"] == "zart.errors:RetryExhausted"
    assert failed.error["raw"]["kind"] == "retry_exhausted"
    assert failed.error["raw"]["attempts"] == 3
    assert len(seen[execution_id]) == 3


# -- timeouts ----------------------------------------------------------------------------------


@zart.step("slow", timeout="100ms", retry="fixed(3, 1ms)")
async def slow() -> None:
    count("slow")
    await asyncio.sleep(5)


@zart.step("slow-failing-global", timeout="250ms", retry="fixed(10, 1ms)")
async def slow_failing_global() -> None:
    count("slow-failing-global")
    await asyncio.sleep(0.1)
    raise ConnectionError("still down")


@zart.step(
    "slow-failing-per-attempt", timeout="250ms", timeout_scope="per_attempt", retry="fixed(3, 1ms)"
)
async def slow_failing_per_attempt() -> None:
    count("slow-failing-per-attempt")
    await asyncio.sleep(0.1)
    raise ConnectionError("still down")


@zart.durable("outcomes-timeouts")
async def timeouts(data: dict[str, Any]) -> dict[str, str]:
    results = {}
    for name, call in (
        ("slow", slow()),
        ("global", slow_failing_global()),
        ("per_attempt", slow_failing_per_attempt()),
    ):
        outcome = await zart.step(call)
        assert isinstance(outcome, zart.ZartErr), outcome
        results[name] = type(outcome.error).__name__
    return results


async def test_timeouts_are_terminal_and_scoped(scheduler: DurableScheduler) -> None:
    execution_id, result = await _run(scheduler, timeouts, {})

    assert result == {
        "slow": "StepTimedOut",  # never retried, whatever the policy says
        "global": "StepTimedOut",  # the deadline spans the retries
        "per_attempt": "RetryExhausted",  # each attempt had its own 250 ms
    }
    assert times(execution_id, "slow") == 1
    assert 2 <= times(execution_id, "slow-failing-global") <= 3
    assert times(execution_id, "slow-failing-per-attempt") == 4
    slow_step, slow_attempts = (await _steps(scheduler, execution_id))["slow"]
    assert slow_step.error["kind"] == "timed_out"
    assert [a.status for a in slow_attempts] == [AttemptStatus.TIMED_OUT]


# -- on_failure and execution deadlines --------------------------------------------------------


async def recover(data: dict[str, Any], failure: zart.ExecutionFailure) -> dict[str, Any]:
    match failure:
        case zart.StepFailed(step=step, error=InsufficientFunds() as error):
            return {"recovered": step, "needed": error.needed}
        case zart.DeadlineExceeded():
            return {"recovered": "deadline"}
        case zart.HandlerFailed(error=error):
            return {"recovered": "handler", "error": str(error)}
    raise AssertionError(failure)


@zart.durable("outcomes-on-failure", on_failure=recover)
async def with_recovery(data: dict[str, str]) -> dict[str, Any]:
    if data["mode"] == "handler":
        raise ValueError("bad input")
    await check_balance(data["mode"])
    return {"recovered": None}


@zart.step("sleepy")
async def sleepy() -> None:
    await asyncio.sleep(5)


@zart.durable("outcomes-deadline", timeout="300ms", on_failure=recover)
async def with_deadline(data: dict[str, Any]) -> dict[str, Any]:
    await sleepy()
    return {"recovered": None}


@pytest.mark.parametrize(
    ("handler", "payload", "expected"),
    [
        (with_recovery, {"mode": "poor"}, {"recovered": "check-balance", "needed": 10}),
        (with_recovery, {"mode": "handler"}, {"recovered": "handler", "error": "bad input"}),
        (with_deadline, {}, {"recovered": "deadline"}),
    ],
)
async def test_on_failure_turns_a_failure_into_a_result(
    scheduler: DurableScheduler, handler: Any, payload: Any, expected: Any
) -> None:
    execution_id, result = await _run(scheduler, handler, payload)

    assert result == expected
    assert (await scheduler.status(execution_id)).status is zart.ExecutionStatus.COMPLETED


@zart.durable("outcomes-deadline-plain", timeout="200ms")
async def deadline_without_recovery(data: dict[str, Any]) -> None:
    await sleepy()


async def test_an_execution_past_its_deadline_fails(scheduler: DurableScheduler) -> None:
    _, failed = await _run(scheduler, deadline_without_recovery, {})

    assert isinstance(failed, zart.ExecutionFailed)
    assert failed.error["kind"] == "deadline_exceeded"


# -- parallel steps ----------------------------------------------------------------------------


@zart.step("fetch-{service}", retry="fixed(2, 5ms)")
async def fetch(service: str) -> str:
    attempt = zart.context().current_attempt
    count(f"fetch-{service}")
    if service == "flaky" and attempt == 0:
        raise ConnectionError("first try fails")
    await asyncio.sleep(0.05)
    return f"{service}@{attempt}"


@zart.durable("outcomes-parallel")
async def parallel(data: dict[str, Any]) -> list[str]:
    first = await asyncio.gather(fetch("auth"), fetch("flaky"), fetch("billing"))
    async with asyncio.TaskGroup() as group:
        later = [group.create_task(fetch(name)) for name in ("users", "search")]
    return [*first, *(task.result() for task in later)]


async def test_parallel_branches_are_checkpointed_and_retried_alone(
    scheduler: DurableScheduler,
) -> None:
    execution_id, result = await _run(scheduler, parallel, {})

    assert result == ["auth@0", "flaky@1", "billing@0", "users@0", "search@0"]
    assert times(execution_id, "fetch-flaky") == 2
    assert times(execution_id, "fetch-auth") == 1
    stored = await _steps(scheduler, execution_id)
    assert set(stored) == {
        "fetch-auth",
        "fetch-flaky",
        "fetch-billing",
        "fetch-users",
        "fetch-search",
    }
    assert [a.status for a in stored["fetch-flaky"][1]] == [
        AttemptStatus.FAILED,
        AttemptStatus.SUCCEEDED,
    ]


# -- steps outside executions, sync steps, context ---------------------------------------------


@zart.step("sync-step-{n}")
def sync_step(n: int) -> dict[str, Any]:
    info = zart.context()
    return {"n": n, "execution": info.execution_id, "step": info.step_name}


@zart.durable("outcomes-sync")
async def with_sync_step(data: dict[str, Any]) -> dict[str, Any]:
    return await sync_step(3)


async def test_sync_steps_run_in_a_thread_and_see_the_context(scheduler: DurableScheduler) -> None:
    execution_id, result = await _run(scheduler, with_sync_step, {})

    assert result == {"n": 3, "execution": execution_id, "step": "sync-step-3"}


async def test_a_step_awaited_outside_an_execution_just_runs() -> None:
    assert await check_balance("rich") == 100
    with pytest.raises(zart.OutsideExecution):  # the sync body ran (in a thread) and asked
        await sync_step(4)
    with pytest.raises(InsufficientFunds):
        await check_balance("poor")
    outcome = await zart.step(check_balance("poor"))
    assert isinstance(outcome, zart.BusinessErr)
    with pytest.raises(zart.OutsideExecution):
        zart.context()


@zart.durable("outcomes-context")
async def context_handler(data: dict[str, Any]) -> dict[str, Any]:
    info = zart.context()
    return {
        "execution_id": info.execution_id,
        "task_name": info.task_name,
        "data": info.data,
        "attempt": info.current_attempt,
        "is_retry": info.is_retry(),
    }


async def test_context_describes_the_execution(scheduler: DurableScheduler) -> None:
    payload = {"user": str(uuid.uuid4())}
    execution_id, result = await _run(scheduler, context_handler, payload)

    assert result == {
        "execution_id": execution_id,
        "task_name": "outcomes-context",
        "data": payload,
        "attempt": 0,
        "is_retry": False,
    }


async def decline(data: dict[str, Any], failure: zart.ExecutionFailure) -> None:
    raise failure.error


@zart.durable("outcomes-on-failure-declines", on_failure=decline)
async def declined(data: dict[str, str]) -> None:
    await check_balance("poor")


async def test_on_failure_may_decline_by_re_raising(scheduler: DurableScheduler) -> None:
    _, failed = await _run(scheduler, declined, {})

    assert isinstance(failed, zart.ExecutionFailed)
    assert failed.error["kind"] == "step_failed"
    assert "original" not in failed.error


@zart.step("stamped", retry="fixed(2, 5ms)")
async def stamped() -> int:
    await zart.now("stamp")  # inside a step body: a plain value, not a checkpoint
    attempt = zart.context().current_attempt
    if attempt == 0:
        raise ConnectionError("first attempt fails")
    return attempt


@zart.durable("outcomes-capture-in-step")
async def capture_in_step(data: dict[str, Any]) -> int:
    return await stamped()


async def test_capture_inside_a_retried_step_is_not_a_checkpoint(
    scheduler: DurableScheduler,
) -> None:
    execution_id, result = await _run(scheduler, capture_in_step, {})

    assert result == 1
    assert set(await _steps(scheduler, execution_id)) == {"stamped"}


async def test_a_handler_timeout_applies_to_starts_by_name_from_elsewhere(
    scheduler: DurableScheduler,
) -> None:
    # Insert the execution as a process without the handler would: no deadline stored.
    async with scheduler.engine.begin() as conn:
        from zart.repositories import executions

        created = await run_on(
            conn,
            executions.create_execution,
            execution_id=f"remote-{uuid.uuid4()}",
            task_name="outcomes-deadline-plain",
            payload={},
            now=scheduler.clock.now(),
        )
    assert created.execution.deadline_at is None

    async with scheduler.run_worker(**FAST_WORKER):
        with pytest.raises(zart.ExecutionFailed) as failed:
            await scheduler.wait(created.execution.execution_id, timeout=10)

    assert failed.value.error["kind"] == "deadline_exceeded"
