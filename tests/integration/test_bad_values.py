"""Values that cannot be stored fail the step, the run or the start, clearly, on both backends:
the execution ends after one claim (it does not loop), the worker goes on running others, and
a refused start stores nothing (issue 13)."""

from __future__ import annotations

import math
import sys
import uuid
from typing import Any

import pytest
from sqlalchemy import update

import zart
from tests.integration.runtime_helpers import FAST_WORKER, steps_of, wait_for_status
from zart import DurableScheduler
from zart.models import StepRow


@zart.step("bad-values-text")
async def returns_text(text: str) -> str:
    return text + "\ud800"  # built here: a payload holding it is refused at the start


@zart.durable("bad-values-step-result")
async def step_result_handler(payload: dict[str, Any]) -> str:
    return await returns_text(payload["text"])


@zart.durable("bad-values-handler-result")
async def handler_result_handler(payload: dict[str, Any]) -> Any:
    return {"items": [1, 2, 3, math.nan if payload["nan"] else "\ud800"]}


@zart.durable("bad-values-error-message")
async def error_message_handler() -> None:
    raise ValueError("refused: \ud800 and \x00")


@zart.durable("bad-values-healthy")
async def healthy_handler() -> str:
    return "fine"


async def _failed(scheduler: DurableScheduler, execution_id: str) -> zart.ExecutionFailed:
    with pytest.raises(zart.ExecutionFailed) as failed:
        await scheduler.wait(execution_id, timeout=20)
    return failed.value


async def test_a_step_result_with_a_lone_surrogate_fails_the_step_once(
    scheduler: DurableScheduler,
) -> None:
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await scheduler.start(step_result_handler, {"text": "caf"})
        failure = await _failed(scheduler, execution_id)
        error: Any = failure.error
        assert error["kind"] == "step_failed"
        assert error["step"] == "bad-values-text"
        assert "text containing a lone surrogate" in error["message"]
        assert (await scheduler.status(execution_id)).claim_count == 1  # not reclaimed
        healthy = await scheduler.start(healthy_handler)  # the worker is alive
        assert await scheduler.wait(healthy, timeout=20) == "fine"


@pytest.mark.parametrize("nan", [True, False], ids=["nan", "lone surrogate"])
async def test_an_unstorable_handler_result_fails_the_execution_naming_the_place(
    scheduler: DurableScheduler, nan: bool
) -> None:
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await scheduler.start(handler_result_handler, {"nan": nan})
        failure = await _failed(scheduler, execution_id)
        error: Any = failure.error
        assert error["kind"] == "unserializable_result"
        assert "['items'][3]" in error["message"]
        record = await scheduler.status(execution_id)
        assert record.claim_count == 1
        assert record.result is None
        healthy = await scheduler.start(healthy_handler)
        assert await scheduler.wait(healthy, timeout=20) == "fine"


async def test_an_error_message_with_a_lone_surrogate_and_nul_is_stored_escaped(
    scheduler: DurableScheduler,
) -> None:
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await scheduler.start(error_message_handler)
        failure = await _failed(scheduler, execution_id)
        error: Any = failure.error
        assert error["kind"] == "handler_failed"
        assert error["message"] == "refused: \\ud800 and \\x00"
        assert (await scheduler.status(execution_id)).claim_count == 1


@pytest.mark.parametrize(
    "payload",
    [{"text": math.nan}, {"text": math.inf}, {"text": "caf\ud800"}, {"caf\ud800": "x"}],
    ids=["nan", "inf", "lone surrogate", "lone surrogate key"],
)
async def test_an_unstorable_payload_is_refused_and_nothing_is_stored(
    scheduler: DurableScheduler, payload: dict[str, Any]
) -> None:
    execution_id = f"bad-payload-{uuid.uuid4()}"
    with pytest.raises(zart.SerializationError, match=r"^payload"):
        await scheduler.start("bad-values-step-result", payload, execution_id=execution_id)
    with pytest.raises(zart.ExecutionNotFound):
        await scheduler.status(execution_id)


# -- names and ids ------------------------------------------------------------------------


@zart.step("named-{sku}")
async def named_step(sku: str) -> str:
    return sku


@zart.durable("bad-values-named-step")
async def named_step_handler(payload: dict[str, Any]) -> str:
    return await named_step(payload["sku"])


BAD_NAMES = {"too long": "x" * 300, "NUL": "a\x00b", "lone surrogate": "caf\ud800"}


async def test_a_step_name_formatted_from_the_payload_that_cannot_be_stored_fails_the_step(
    scheduler: DurableScheduler,
) -> None:
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await scheduler.start(named_step_handler, {"sku": "x" * 300})
        failure = await _failed(scheduler, execution_id)
        error: Any = failure.error
        assert error["kind"] == "handler_failed"
        assert "step name 'named-xxx" in error["message"]
        assert "at most 255 fit" in error["message"]
        assert (await scheduler.status(execution_id)).claim_count == 1
        healthy = await scheduler.start(healthy_handler)
        assert await scheduler.wait(healthy, timeout=20) == "fine"


@pytest.mark.parametrize("bad", BAD_NAMES.values(), ids=BAD_NAMES.keys())
async def test_a_start_with_a_bad_execution_id_or_task_name_stores_nothing(
    scheduler: DurableScheduler, bad: str
) -> None:
    with pytest.raises(zart.InvalidName, match=r"^execution id"):
        await scheduler.start(healthy_handler, execution_id=bad)
    with pytest.raises(zart.InvalidName, match=r"^task name"):
        await scheduler.start(bad, execution_id="never-stored")
    assert (await scheduler.list_executions()).total == 0


@pytest.mark.parametrize("bad", BAD_NAMES.values(), ids=BAD_NAMES.keys())
async def test_an_event_with_a_bad_name_or_execution_id_stores_nothing(
    scheduler: DurableScheduler, bad: str
) -> None:
    execution_id = await scheduler.start(healthy_handler)
    with pytest.raises(zart.InvalidName, match=r"^event name"):
        await scheduler.offer_event(execution_id, bad, {"ok": True})
    with pytest.raises(zart.InvalidName, match=r"^execution id"):
        await scheduler.offer_event(bad, "approved", {"ok": True})
    detail = await scheduler.execution_detail(execution_id)
    assert detail.events == ()


@zart.durable("bad-values-exits")
async def exiting_handler() -> None:
    sys.exit(3)  # would stop the worker's event loop if it escaped the run


async def test_a_handler_calling_sys_exit_fails_its_execution_and_the_worker_goes_on(
    scheduler: DurableScheduler,
) -> None:
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await scheduler.start(exiting_handler)
        failure = await _failed(scheduler, execution_id)
        error: Any = failure.error
        assert error["kind"] == "handler_failed"
        assert error["error"]["type"] == "builtins:SystemExit"
        assert (await scheduler.status(execution_id)).claim_count == 1
        healthy = await scheduler.start(healthy_handler)
        assert await scheduler.wait(healthy, timeout=20) == "fine"


# -- planted rows ---------------------------------------------------------------------------


@zart.step("bad-values-refuse")
async def refuse() -> None:
    raise ValueError("no")


@zart.durable("bad-values-planted-error")
async def planted_error_handler() -> str:
    try:
        await refuse()
    except Exception as exc:  # replay raises what the stored row says
        caught = f"{type(exc).__name__}: {exc}"
    await zart.wait_for_event("go", timeout=60)
    return caught


@pytest.mark.parametrize(
    "planted", ["builtins:SystemExit", "builtins:KeyboardInterrupt", "zart.errors:LeaseLost"]
)
async def test_a_planted_stored_error_replays_as_stored_error_not_a_worker_exit(
    suspending: DurableScheduler, planted: str
) -> None:
    scheduler = suspending
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await scheduler.start(planted_error_handler)
        await wait_for_status(scheduler, execution_id, zart.ExecutionStatus.WAITING)
        stored = (await steps_of(scheduler, execution_id))["bad-values-refuse"]
        error = {**stored.error, "error": {**stored.error["error"], "type": planted}}
        async with scheduler.engine.begin() as conn:
            await conn.execute(
                update(StepRow).where(StepRow.step_id == stored.step_id).values(error=error)
            )
        await scheduler.offer_event(execution_id, "go")
        result = await scheduler.wait(execution_id, timeout=20)
        assert result == f"StoredError: {planted}: no"
        healthy = await scheduler.start(healthy_handler)  # the worker is alive
        assert await scheduler.wait(healthy, timeout=20) == "fine"
