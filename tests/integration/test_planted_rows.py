"""Rows planted in the tables with SQL (by anyone with write access, or a bug) that the worker
cannot read back end the execution as failed with a readable stored error, after one claim,
and the worker goes on running others (issue 13): JSON nested deeper than the decoder goes,
text that is not JSON at all (SQLite only: PostgreSQL's JSONB refuses it on the way in), and a
type tag naming a class nobody declared."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from sqlalchemy import text

import zart
from tests.integration.runtime_helpers import FAST_WORKER, steps_of, wait_for_status
from zart import DurableScheduler

DEEP = "nested too deep"  # built per backend by _planted
UNKNOWN_TAG = '{"$zart": "model", "type": "no_such_module:Planted", "v": {}}'


@zart.step("planted-rows-compute")
async def compute() -> dict[str, int]:
    return {"n": 1}


@zart.durable("planted-rows-step-result")
async def step_result_handler() -> Any:
    value = await compute()
    await zart.wait_for_event("go", timeout=60)
    return value


@zart.durable("planted-rows-healthy")
async def healthy_handler() -> str:
    return "fine"


async def _plant(scheduler: DurableScheduler, sql: str, **params: Any) -> None:
    async with scheduler.engine.begin() as conn:
        await conn.execute(text(sql), params)


async def _ends_failed(scheduler: DurableScheduler, execution_id: str) -> dict[str, Any]:
    with pytest.raises(zart.ExecutionFailed) as failed:
        await scheduler.wait(execution_id, timeout=30)
    error: Any = failed.value.error
    assert isinstance(error, dict)
    return error


def _json(scheduler: DurableScheduler) -> str:
    return "CAST(:value AS jsonb)" if _on_postgresql(scheduler) else ":value"


def _on_postgresql(scheduler: DurableScheduler) -> bool:
    return scheduler.engine.dialect.name == "postgresql"


def _planted(scheduler: DurableScheduler, planted: str) -> str:
    if planted != DEEP:
        return planted
    # PostgreSQL's own parser stops at its stack depth limit well before 100,000 levels; 5,000
    # is past Python's recursion limit all the same.
    depth = 5_000 if _on_postgresql(scheduler) else 100_000
    return "[" * depth + "]" * depth


NOT_JSON = "{not json"
PLANTED = {
    "nested too deep": (DEEP, "the stored JSON is nested too deeply to read"),
    "not JSON": (NOT_JSON, "the stored text is not JSON"),
    "unknown type tag": (UNKNOWN_TAG, "class 'no_such_module:Planted' cannot be imported"),
}


def _skip_not_json_on_postgresql(scheduler: DurableScheduler, planted: str) -> None:
    if planted == NOT_JSON and _on_postgresql(scheduler):
        pytest.skip("PostgreSQL's JSONB refuses text that is not JSON: it cannot be planted")


@pytest.mark.parametrize(("planted", "message"), PLANTED.values(), ids=PLANTED)
async def test_a_planted_step_result_fails_the_execution_once(
    suspending: DurableScheduler, planted: str, message: str
) -> None:
    scheduler = suspending
    _skip_not_json_on_postgresql(scheduler, planted)
    async with scheduler.run_worker(**FAST_WORKER):
        execution_id = await scheduler.start(step_result_handler)
        await wait_for_status(scheduler, execution_id, zart.ExecutionStatus.WAITING)
        stored = (await steps_of(scheduler, execution_id))["planted-rows-compute"]
        await _plant(
            scheduler,
            f"UPDATE zart_steps SET result = {_json(scheduler)} WHERE step_id = :step_id",
            value=_planted(scheduler, planted),
            step_id=stored.step_id,
        )
        await scheduler.offer_event(execution_id, "go")
        error = await _ends_failed(scheduler, execution_id)
        assert error["kind"] == "handler_failed"
        assert error["error"]["type"] == "zart.errors:SerializationError"
        assert "cannot read back a stored" in error["message"]
        assert message in error["message"]
        # claimed once to run up to the wait, once after the event: not again
        assert (await scheduler.status(execution_id)).claim_count == 2
        healthy = await scheduler.start(healthy_handler)  # the worker is alive
        assert await scheduler.wait(healthy, timeout=20) == "fine"


@zart.durable("planted-rows-payload")
async def payload_handler(payload: Any) -> Any:
    return payload


UNREADABLE = {name: PLANTED[name] for name in ("nested too deep", "not JSON")}


# A payload is plain JSON (a type tag in it is data, never decoded): only unreadable ones.
@pytest.mark.parametrize(("planted", "message"), UNREADABLE.values(), ids=UNREADABLE)
async def test_a_planted_payload_fails_the_execution_once(
    scheduler: DurableScheduler, planted: str, message: str
) -> None:
    _skip_not_json_on_postgresql(scheduler, planted)
    execution_id = await scheduler.start(payload_handler, {"n": 1})  # no worker yet
    for table in ("zart_executions", "zart_runs"):
        await _plant(
            scheduler,
            f"UPDATE {table} SET payload = {_json(scheduler)} WHERE execution_id = :id",
            value=_planted(scheduler, planted),
            id=execution_id,
        )
    async with scheduler.run_worker(**FAST_WORKER):
        error = await _ends_failed(scheduler, execution_id)
        assert error["kind"] == "invalid_payload"
        assert "cannot read back a stored" in error["message"]
        assert message in error["message"]
        assert (await scheduler.status(execution_id)).claim_count == 1
        healthy = await scheduler.start(healthy_handler)
        assert await scheduler.wait(healthy, timeout=20) == "fine"


@zart.step("planted-rows-refuse")
async def refuse() -> None:
    raise ValueError("no")


@zart.durable("planted-rows-step-error")
async def step_error_handler() -> str:
    try:
        await refuse()
    except Exception as exc:  # replay raises what the stored row says
        caught = f"{type(exc).__name__}: {exc}"
    await zart.wait_for_event("go", timeout=60)
    return caught


async def _plant_step_error(
    scheduler: DurableScheduler, planted: str | None = None, error_type: str | None = None
) -> str:
    """Run step_error_handler up to its wait, replace its stored step error (the whole column
    with ``planted``, or the stored type with ``error_type``), let it replay; its result."""
    execution_id = await scheduler.start(step_error_handler)
    await wait_for_status(scheduler, execution_id, zart.ExecutionStatus.WAITING)
    stored = (await steps_of(scheduler, execution_id))["planted-rows-refuse"]
    if planted is None:
        planted = json.dumps(
            {**stored.error, "error": {**stored.error["error"], "type": error_type}}
        )
    await _plant(
        scheduler,
        f"UPDATE zart_steps SET error = {_json(scheduler)} WHERE step_id = :step_id",
        value=_planted(scheduler, planted),
        step_id=stored.step_id,
    )
    await scheduler.offer_event(execution_id, "go")
    result: str = await scheduler.wait(execution_id, timeout=30)
    # claimed once to run up to the wait, once after the event: not again
    assert (await scheduler.status(execution_id)).claim_count == 2
    return result


@pytest.mark.parametrize(("planted", "message"), UNREADABLE.values(), ids=UNREADABLE)
async def test_an_unreadable_planted_step_error_is_raised_as_a_serialization_error(
    suspending: DurableScheduler, planted: str, message: str
) -> None:
    scheduler = suspending
    _skip_not_json_on_postgresql(scheduler, planted)
    async with scheduler.run_worker(**FAST_WORKER):
        result = await _plant_step_error(scheduler, planted)
        assert result.startswith("SerializationError: cannot read back a stored value: ")
        assert message in result
        healthy = await scheduler.start(healthy_handler)  # the worker is alive
        assert await scheduler.wait(healthy, timeout=20) == "fine"


async def test_a_planted_step_error_naming_an_unknown_class_replays_as_stored_error(
    suspending: DurableScheduler,
) -> None:
    scheduler = suspending
    async with scheduler.run_worker(**FAST_WORKER):
        result = await _plant_step_error(scheduler, error_type="no_such_module:Planted")
        assert result == "StoredError: no_such_module:Planted: no"
        assert "no_such_module" not in sys.modules  # nothing imported
        healthy = await scheduler.start(healthy_handler)
        assert await scheduler.wait(healthy, timeout=20) == "fine"


@zart.durable("planted-rows-event")
async def event_handler() -> str:
    try:
        await zart.wait_for_event("go", timeout=60)
    except zart.SerializationError as exc:
        return f"SerializationError: {exc}"
    return "read"  # pragma: no cover - the planted payload cannot be read


@pytest.mark.parametrize(("planted", "message"), UNREADABLE.values(), ids=UNREADABLE)
async def test_a_planted_event_payload_is_raised_at_the_wait_as_a_serialization_error(
    scheduler: DurableScheduler, planted: str, message: str
) -> None:
    _skip_not_json_on_postgresql(scheduler, planted)
    execution_id = await scheduler.start(event_handler)  # no worker yet
    await scheduler.offer_event(execution_id, "go", {"ok": True})
    await _plant(
        scheduler,
        f"UPDATE zart_events SET payload = {_json(scheduler)} WHERE execution_id = :id",
        value=_planted(scheduler, planted),
        id=execution_id,
    )
    async with scheduler.run_worker(**FAST_WORKER):
        result = await scheduler.wait(execution_id, timeout=30)
        assert result.startswith("SerializationError: cannot read back a stored value: ")
        assert message in result
        assert (await scheduler.status(execution_id)).claim_count == 1
        healthy = await scheduler.start(healthy_handler)
        assert await scheduler.wait(healthy, timeout=20) == "fine"
