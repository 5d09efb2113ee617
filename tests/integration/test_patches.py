"""``zart.patched`` on both backends: the answer is recorded once and kept on every replay,
a run recorded before the patch gets False and records nothing, and bad calls are clear
errors. (Across a real deploy and worker processes: tests/acceptance/test_versioning.py.)"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import zart
from tests.integration.runtime_helpers import count, steps_of, times, wait_for_status
from zart import DurableScheduler

WORKER = {"poll_interval": 0.02, "lease_timeout": 5.0, "claim_ahead": 0.0}
PATCHED: dict[str, bool] = {}  # execution id -> whether its code has the patch


@zart.step("patches-old")
async def old_step() -> str:
    count("old")
    return "old"


@zart.step("patches-new")
async def new_step() -> str:
    count("new")
    return "new"


@zart.durable("patches-flow")
async def flow(data: dict[str, Any]) -> list[Any]:
    execution_id = zart.context().execution_id
    answers = []
    if PATCHED.get(execution_id, True):
        answers.append(await zart.patched("p1"))
        answers.append(await zart.patched("p1"))  # asked twice: the same answer
    path = await (new_step() if answers and answers[0] else old_step())
    await zart.wait_for_event("go")
    if PATCHED.get(execution_id, True):
        answers.append(await zart.patched("p2"))  # at the edge of the history: new path
    return [path, *answers]


async def test_a_new_run_takes_the_patch_and_keeps_it_on_replay(
    suspending: DurableScheduler,
) -> None:
    async with suspending.run_worker(**WORKER):
        execution_id = await suspending.start(flow, {})
        await wait_for_status(suspending, execution_id, zart.ExecutionStatus.WAITING)
        await suspending.offer_event(execution_id, "go")
        assert await suspending.wait(execution_id, timeout=10) == ["new", True, True, True]
    steps = await steps_of(suspending, execution_id)
    assert [name for name in steps if name.startswith("zart:patch:")] == [
        "zart:patch:p1",
        "zart:patch:p2",
    ]
    assert times(execution_id, "new") == 1
    detail = await suspending.execution_detail(execution_id)
    assert [s.step.name for s in detail.steps][:2] == ["zart:patch:p1", "patches-new"]


async def test_a_run_recorded_before_the_patch_keeps_the_old_path(
    suspending: DurableScheduler,
) -> None:
    async with suspending.run_worker(**WORKER):
        execution_id = f"patches-old-{uuid.uuid4()}"
        PATCHED[execution_id] = False  # recorded by code without the patch
        await suspending.start(flow, {}, execution_id=execution_id)
        await wait_for_status(suspending, execution_id, zart.ExecutionStatus.WAITING)
        PATCHED[execution_id] = True  # the deploy
        await suspending.offer_event(execution_id, "go")
        assert await suspending.wait(execution_id, timeout=10) == ["old", False, False, True]
    steps = await steps_of(suspending, execution_id)
    assert "zart:patch:p1" not in steps  # a False answer records nothing
    assert "zart:patch:p2" in steps
    assert (times(execution_id, "old"), times(execution_id, "new")) == (1, 0)


@zart.step("patches-in-a-step")
async def patching_step() -> bool:
    return await zart.patched("inside")


@zart.durable("patches-misused")
async def misused(data: dict[str, Any]) -> bool:
    return await patching_step()


async def test_patched_inside_a_step_body_is_a_clear_error(scheduler: DurableScheduler) -> None:
    async with scheduler.run_worker(**WORKER):
        execution_id = await scheduler.start(misused, {})
        with pytest.raises(zart.ExecutionFailed) as failed:
            await scheduler.wait(execution_id, timeout=10)
    assert "zart.patched() is awaited in the handler, not inside a step's body" in str(failed.value)


async def test_patched_outside_a_handler_and_bad_ids_are_clear_errors() -> None:
    with pytest.raises(zart.OutsideExecution, match="inside a durable handler only"):
        await zart.patched("p")
    for bad in ("", " ", "x" * 300, "a\x00b", 3):
        with pytest.raises(zart.InvalidName, match="patch id"):
            await zart.patched(bad)  # type: ignore[arg-type]
        with pytest.raises(zart.InvalidName, match="patch id"):
            zart.deprecate_patch(bad)  # type: ignore[arg-type]
    zart.deprecate_patch("fine")  # outside a handler too: it records nothing
