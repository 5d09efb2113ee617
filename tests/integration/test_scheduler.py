"""DurableScheduler: idempotent start, bad input that stores nothing, cancel, wait."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

import pytest
from pydantic import BaseModel
from typing_extensions import TypedDict

import zart
from tests.factories import run_on
from tests.integration.runtime_helpers import (
    FAST_WORKER,
    arrived,
    count,
    open_gate,
    pass_gate,
    times,
)
from zart import DurableScheduler


class Signup(BaseModel):
    email: str
    plan: str = "free"


class Summary(BaseModel):
    email: str
    steps: int


@zart.step("greet")
async def greet(email: str) -> str:
    count("greet")
    return f"hello {email}"


@zart.durable("scheduler-onboarding")
async def onboarding(data: Signup) -> Summary:
    await greet(data.email)
    return Summary(email=data.email, steps=1)


async def _executions(scheduler: DurableScheduler) -> int:
    return (await scheduler.list_executions(limit=1000)).total


async def test_start_with_a_model_and_wait_for_a_typed_result(scheduler: DurableScheduler) -> None:
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await scheduler.start(onboarding, Signup(email="a@b.c"))
        result = await scheduler.wait(execution_id, timeout=10)

    assert result == Summary(email="a@b.c", steps=1)
    record = await scheduler.status(execution_id)
    assert record.payload == {"email": "a@b.c", "plan": "free"}
    assert record.result == {"email": "a@b.c", "steps": 1}
    assert record.task_name == "scheduler-onboarding"


async def test_start_by_name_with_a_json_payload(scheduler: DurableScheduler) -> None:
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await scheduler.start("scheduler-onboarding", {"email": "x@y.z"})
        result = await scheduler.wait(execution_id, timeout=10)

    assert result.email == "x@y.z"


async def test_start_is_idempotent_by_execution_id(scheduler: DurableScheduler) -> None:
    first = await scheduler.start(onboarding, {"email": "a@b.c"}, execution_id="signup-1")
    again = await scheduler.start(onboarding, Signup(email="a@b.c"), execution_id="signup-1")

    assert first == again == "signup-1"
    assert await _executions(scheduler) == 1
    with pytest.raises(zart.ExecutionAlreadyExists, match="different payload"):
        await scheduler.start(onboarding, {"email": "other@b.c"}, execution_id="signup-1")
    assert (await scheduler.status("signup-1")).payload["email"] == "a@b.c"


@pytest.mark.parametrize(
    ("target", "payload", "error", "message"),
    [
        ("no-such-task", {}, zart.UnknownTask, "no-such-task"),
        ("scheduler-onboarding", {"plan": "pro"}, zart.InvalidPayload, "email"),
        (onboarding, {"email": 5}, zart.InvalidPayload, "email"),
        (onboarding, "not an object", zart.InvalidPayload, "scheduler-onboarding"),
        (onboarding, {"email": "nul\x00byte"}, zart.InvalidPayload, "NUL"),
    ],
)
async def test_bad_starts_name_the_problem_and_store_nothing(
    scheduler: DurableScheduler, target: Any, payload: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        await scheduler.start(target, payload)

    assert await _executions(scheduler) == 0


async def test_payloads_over_the_size_limit_are_refused(database_url: str) -> None:
    async with DurableScheduler(database_url, max_payload_bytes=1024) as scheduler:
        with pytest.raises(zart.SerializationError, match=r"payload .* over the limit of 1,024"):
            await scheduler.start(onboarding, {"email": "x" * 2000})
        assert await _executions(scheduler) == 0


# -- results that cannot be stored --------------------------------------------------------


@zart.step("returns-a-function")
async def returns_a_function() -> Any:
    count("returns-a-function")
    return lambda: None


@zart.durable("scheduler-unstorable-step")
async def unstorable_step(data: dict[str, Any]) -> None:
    await returns_a_function()


@zart.durable("scheduler-unstorable-result")
async def unstorable_result(data: dict[str, Any]) -> Any:
    return object()


@pytest.mark.parametrize(
    ("handler", "kind"),
    [(unstorable_step, "step_failed"), (unstorable_result, "unserializable_result")],
)
async def test_values_that_cannot_be_stored_fail_clearly(
    scheduler: DurableScheduler, handler: Any, kind: str
) -> None:
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await scheduler.start(handler, {})
        with pytest.raises(zart.ExecutionFailed) as failed:
            await scheduler.wait(execution_id, timeout=10)

    assert failed.value.error["kind"] == kind
    assert "cannot" in failed.value.error["message"]
    record = await scheduler.status(execution_id)
    async with scheduler.engine.connect() as conn:
        from zart.repositories import steps

        assert await run_on(conn, steps.load_run_outcomes, record.run_id) == {}


# -- cancel ------------------------------------------------------------------------------------


@zart.step("before-cancel")
async def before_cancel() -> None:
    count("before-cancel")
    await pass_gate()


@zart.step("after-cancel")
async def after_cancel() -> None:
    count("after-cancel")


@zart.durable("scheduler-cancellable")
async def cancellable(data: dict[str, Any]) -> None:
    await before_cancel()
    await after_cancel()


async def test_a_cancelled_execution_runs_no_further_step(scheduler: DurableScheduler) -> None:
    execution_id = f"cancel-{uuid.uuid4()}"
    gate = open_gate(execution_id)
    async with scheduler.run_worker(**FAST_WORKER):
        await scheduler.start(cancellable, {}, execution_id=execution_id)
        await asyncio.wait_for(arrived[execution_id].wait(), 10)

        assert await scheduler.cancel(execution_id) is True
        gate.set()
        with pytest.raises(zart.ExecutionCancelled):
            await scheduler.wait(execution_id, timeout=10)
        await asyncio.sleep(0.1)

    assert times(execution_id, "after-cancel") == 0
    assert (await scheduler.status(execution_id)).status is zart.ExecutionStatus.CANCELLED
    assert await scheduler.cancel(execution_id) is False
    with pytest.raises(zart.ExecutionNotFound):
        await scheduler.cancel("no-such-execution")


async def test_a_cancelled_scheduled_execution_never_starts(scheduler: DurableScheduler) -> None:
    execution_id = await scheduler.start(cancellable, {})
    assert await scheduler.cancel(execution_id)

    async with scheduler.run_worker(**FAST_WORKER):
        await asyncio.sleep(0.2)

    assert times(execution_id, "before-cancel") == 0


async def test_wait_gives_up_without_stopping_the_execution(scheduler: DurableScheduler) -> None:
    execution_id = await scheduler.start(onboarding, {"email": "late@b.c"})

    with pytest.raises(zart.WaitTimedOut):
        await scheduler.wait(execution_id, timeout=0.1)

    assert (await scheduler.status(execution_id)).status is zart.ExecutionStatus.SCHEDULED
    with pytest.raises(zart.ExecutionNotFound):
        await scheduler.status("missing")


async def test_list_executions_filters_and_validates(scheduler: DurableScheduler) -> None:
    for i in range(3):
        await scheduler.start(onboarding, {"email": f"{i}@b.c"}, execution_id=f"list-{i}")
    await scheduler.cancel("list-1")

    cancelled = await scheduler.list_executions(status="cancelled")
    assert [r.execution_id for r in cancelled.items] == ["list-1"]
    page = await scheduler.list_executions(task_name="scheduler-onboarding", limit=2)
    assert page.total == 3
    assert len(page.items) == 2
    with pytest.raises(zart.InvalidPayload, match="unknown status"):
        await scheduler.list_executions(status="sleeping")


# -- input types ------------------------------------------------------------------------------


@dataclasses.dataclass
class Order:
    order_id: int
    items: list[str]


class Address(TypedDict):
    city: str


@zart.durable("scheduler-dataclass-input")
async def takes_dataclass(order: Order) -> tuple[int, int]:
    return (order.order_id, len(order.items))


@zart.durable("scheduler-typeddict-input")
async def takes_typeddict(address: Address) -> str:
    return address["city"]


@zart.durable("scheduler-no-input")
async def takes_nothing() -> str:
    return "nothing needed"


@pytest.mark.parametrize(
    ("handler", "payload", "expected"),
    [
        (takes_dataclass, Order(7, ["a", "b"]), (7, 2)),
        (takes_dataclass, {"order_id": "8", "items": []}, (8, 0)),
        (takes_typeddict, {"city": "Lisbon"}, "Lisbon"),
        (takes_nothing, None, "nothing needed"),
    ],
)
async def test_handler_inputs_and_outputs_follow_their_annotations(
    scheduler: DurableScheduler, handler: Any, payload: Any, expected: Any
) -> None:
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await scheduler.start(handler, payload)
        assert await scheduler.wait(execution_id, timeout=10) == expected


async def test_a_handler_without_input_refuses_a_payload(scheduler: DurableScheduler) -> None:
    with pytest.raises(zart.InvalidPayload, match="takes no input"):
        await scheduler.start(takes_nothing, {"x": 1})


async def test_reads_do_not_wait_for_an_open_write_transaction(
    scheduler: DurableScheduler,
) -> None:
    known = await scheduler.start(onboarding, {"email": "known@b.c"})
    async with scheduler.engine.connect() as app_conn:
        await app_conn.begin()
        await scheduler.start(onboarding, {"email": "pending@b.c"}, session=app_conn)
        # The application's transaction holds the write lock (SQLite) / an open insert (PG).
        record = await asyncio.wait_for(scheduler.status(known), timeout=5)
        page = await asyncio.wait_for(scheduler.list_executions(), timeout=5)
        await app_conn.rollback()

    assert record.execution_id == known
    assert [r.execution_id for r in page.items] == [known]


@zart.durable("scheduler-big-result")
async def big_result(data: dict[str, int]) -> str:
    return "x" * data["size"]


async def test_a_result_over_the_size_limit_fails_the_execution(database_url: str) -> None:
    async with (
        DurableScheduler(database_url, max_payload_bytes=1024) as scheduler,
        scheduler.run_worker(**FAST_WORKER),
    ):
        execution_id = await scheduler.start(big_result, {"size": 5000})
        with pytest.raises(zart.ExecutionFailed) as failed:
            await scheduler.wait(execution_id, timeout=10)

    assert failed.value.error["kind"] == "unserializable_result"
    assert "over the limit of 1,024 bytes" in failed.value.error["message"]


@zart.durable("scheduler-unstorable-outcome")
async def unstorable_outcome(data: dict[str, Any]) -> str:
    outcome = await zart.step(returns_a_function().named("unstorable"))
    return f"got an outcome: {outcome!r}"  # never reached: this is Zart's error, not one


async def test_an_unstorable_result_is_not_a_step_outcome(scheduler: DurableScheduler) -> None:
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await scheduler.start(unstorable_outcome, {})
        with pytest.raises(zart.ExecutionFailed) as failed:
            await scheduler.wait(execution_id, timeout=10)

    assert failed.value.error["kind"] == "step_failed"
    assert failed.value.error["step"] == "unstorable"
    assert failed.value.error["raw"]["kind"] == "unserializable_result"


@zart.step("detail-flaky", retry="fixed(1, 1ms)")
async def detail_flaky() -> int:
    if zart.context().current_attempt < 1:
        raise ConnectionError("first try fails")
    return 7


@zart.durable("scheduler-detail")
async def detail_flow(data: dict[str, Any]) -> int:
    await greet("d@e.f")
    return await detail_flaky()


async def test_execution_detail_shows_runs_steps_and_attempts(
    scheduler: DurableScheduler,
) -> None:
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await scheduler.start(detail_flow, {})
        assert await scheduler.wait(execution_id, timeout=10) == 7

    detail = await scheduler.execution_detail(execution_id)

    assert detail.execution.execution_id == execution_id
    assert [run.run_id for run in detail.runs] == [detail.run_id] == [detail.execution.run_id]
    assert [(d.step.name, d.step.status.value) for d in detail.steps] == [
        ("greet", "completed"),
        ("detail-flaky", "completed"),
    ]
    flaky = detail.steps[1]
    assert [(a.attempt_number, a.status.value) for a in flaky.attempts] == [
        (0, "failed"),
        (1, "succeeded"),
    ]
    assert flaky.step.result == 7
    assert (await scheduler.execution_detail(execution_id, detail.run_id)) == detail


async def test_execution_detail_of_unknown_ids(scheduler: DurableScheduler) -> None:
    execution_id = await scheduler.start(detail_flow, {})

    with pytest.raises(zart.ExecutionNotFound):
        await scheduler.execution_detail("no-such-execution")
    with pytest.raises(zart.RunNotFound, match="no run with id 'no-such-run'"):
        await scheduler.execution_detail(execution_id, "no-such-run")
    detail = await scheduler.execution_detail(execution_id)
    assert detail.steps == ()


async def test_stats_count_every_status(scheduler: DurableScheduler) -> None:
    before = await scheduler.stats()
    first = await scheduler.start(detail_flow, {})
    await scheduler.start(detail_flow, {})
    await scheduler.cancel(first)

    after = await scheduler.stats()
    assert set(after) == set(zart.ExecutionStatus)
    assert after[zart.ExecutionStatus.SCHEDULED] == before[zart.ExecutionStatus.SCHEDULED] + 1
    assert after[zart.ExecutionStatus.CANCELLED] == before[zart.ExecutionStatus.CANCELLED] + 1
