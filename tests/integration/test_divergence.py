"""Safe deploys, on both backends: a handler whose code changed under a running execution is
caught at the first step where it leaves the recorded history (inserted, removed, reordered,
renamed step, changed kind, a stored result that no longer fits), the execution is held (not
failed, not run again), no side effect runs twice, and an operator resumes or fails it.
Parallel branches that finish in another order are not a change.

A "deploy" here is the handler taking another code path for the execution (``CODE``), the
way a new module version would: the history is the same database rows either way."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import zart
from tests.integration.runtime_helpers import wait_for_status
from zart import DurableScheduler

WORKER = {"poll_interval": 0.02, "lease_timeout": 5.0, "claim_ahead": 0.0}

#: execution id -> the code "deployed" for it ("old" until the test changes it)
CODE: dict[str, str] = {}
#: the side-effect journal: one line "<execution id> <effect>" per step body that ran
JOURNAL: list[Path] = []


@pytest.fixture(autouse=True)
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "journal.txt"
    path.write_text("")
    JOURNAL[:] = [path]
    return path


def effect(label: str) -> None:
    with JOURNAL[0].open("a") as file:
        file.write(f"{zart.context().execution_id} {label}\n")


def effects(execution_id: str) -> list[str]:
    lines = JOURNAL[0].read_text().splitlines()
    return [line.split(" ", 1)[1] for line in lines if line.split(" ", 1)[0] == execution_id]


class Quote(BaseModel):
    amount: int


@zart.step("div-charge")
async def charge() -> int:
    effect("charge")
    return 42


@zart.step("div-charge")
async def charge_quote() -> Quote:  # the same step, returning a model after the deploy
    effect("charge-quote")
    return Quote(amount=42)


@zart.step("div-ship")
async def ship() -> str:
    effect("ship")
    return "shipped"


@zart.step("div-fraud-check")
async def fraud_check() -> bool:
    effect("fraud-check")
    return True


@zart.step("div-audit")
async def audit() -> str:
    effect("audit")
    return "audited"


async def _charged() -> Any:
    code = CODE.get(zart.context().execution_id, "old")
    if code == "rename":
        return await charge().named("div-charge-v2")
    if code == "kind":
        return await zart.capture("div-charge", lambda: 42)
    if code == "drift":
        quote = await charge_quote()
        return quote.amount  # an int stored by the old code would fail here
    return await charge()


@zart.durable("div-order")
async def order(data: dict[str, Any]) -> str:
    code = CODE.get(zart.context().execution_id, "old")
    if code == "remove":
        await ship()
    elif code == "reorder":
        await ship()
        await _charged()
    else:
        await _charged()
        if code == "insert":
            await fraud_check()
        await ship()
    if code != "remove-last":
        await zart.wait_for_event("go")
        await audit()
    return "done"


async def _held(scheduler: DurableScheduler, code: str) -> tuple[str, zart.PauseRuleRecord]:
    """An order recorded by the old code up to its event wait, then woken under ``code``:
    held on its divergence."""
    execution_id = await scheduler.start(order, {})
    CODE[execution_id] = "old"
    await wait_for_status(scheduler, execution_id, zart.ExecutionStatus.WAITING)
    assert effects(execution_id) == ["charge", "ship"]
    CODE[execution_id] = code
    await scheduler.offer_event(execution_id, "go", {})
    for _ in range(500):
        hold = await scheduler.divergence(execution_id)
        if hold is not None:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError(f"{execution_id} was never held")
    await wait_for_status(scheduler, execution_id, zart.ExecutionStatus.WAITING)
    return execution_id, hold


VERDICTS = {
    "insert": (
        "the run recorded step 'div-ship' at position 1 in the handler's own task, but the code"
        " now runs step 'div-fraud-check' there (a step inserted or renamed)"
    ),
    "remove": (
        "the run recorded step 'div-charge' at position 0 in the handler's own task, but the"
        " code now runs step 'div-ship' there (reordered, or the steps before it removed)"
    ),
    "reorder": (
        "the run recorded step 'div-charge' at position 0 in the handler's own task, but the"
        " code now runs step 'div-ship' there (reordered, or the steps before it removed)"
    ),
    "rename": (
        "the run recorded step 'div-charge' at position 0 in the handler's own task, but the"
        " code now runs step 'div-charge-v2' there (a step inserted or renamed)"
    ),
    "kind": (
        "'div-charge' was recorded as a step at position 0 in this run but is now used as a capture"
    ),
    "drift": (
        "step 'div-charge' (position 0) has a stored result of type builtins.int, but the step"
        " now returns tests.integration.test_divergence.Quote"
    ),
    "remove-last": (
        "the run recorded event 'go' at position 2 in the handler's own task, but the code now"
        " ends without reaching it"
    ),
}


@pytest.mark.parametrize("code", sorted(VERDICTS))
async def test_a_changed_handler_is_held_at_the_first_divergence(
    suspending: DurableScheduler, code: str
) -> None:
    async with suspending.run_worker(**WORKER):
        execution_id, hold = await _held(suspending, code)
        record = await suspending.status(execution_id)
        detail = await suspending.execution_detail(execution_id)

    assert VERDICTS[code] in (hold.reason or "")
    assert hold.triggered_by == "zart:replay"
    assert record.status is zart.ExecutionStatus.WAITING  # held: not failed, not finished
    assert record.error is None
    assert detail.divergence is not None
    assert detail.divergence.rule_id == hold.rule_id
    # Nothing ran again, and nothing new ran: the divergence is found before the step runs.
    assert effects(execution_id) == ["charge", "ship"]
    assert [r.rule_id for r in await suspending.list_pause_rules()] == [hold.rule_id]


async def test_a_held_execution_resumes_after_the_fix(suspending: DurableScheduler) -> None:
    async with suspending.run_worker(**WORKER):
        execution_id, _hold = await _held(suspending, "insert")
        # Still held when woken again with the same code: the same hold, nothing run.
        await suspending.offer_event(execution_id, "unrelated", {})
        CODE[execution_id] = "old"  # the fix is deployed
        await suspending.resume_diverged(execution_id, triggered_by="ops")
        assert await suspending.wait(execution_id, timeout=10) == "done"

    assert effects(execution_id) == ["charge", "ship", "audit"]
    assert await suspending.divergence(execution_id) is None
    assert await suspending.list_pause_rules() == []


async def test_a_held_execution_resumed_without_a_fix_is_held_again(
    suspending: DurableScheduler,
) -> None:
    async with suspending.run_worker(**WORKER):
        execution_id, first = await _held(suspending, "rename")
        await suspending.resume_diverged(execution_id)
        for _ in range(500):
            again = await suspending.divergence(execution_id)
            if again is not None:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("not held again")
        await wait_for_status(suspending, execution_id, zart.ExecutionStatus.WAITING)

    assert again.rule_id != first.rule_id
    assert effects(execution_id) == ["charge", "ship"]


async def test_a_held_execution_can_be_failed(suspending: DurableScheduler) -> None:
    async with suspending.run_worker(**WORKER):
        execution_id, hold = await _held(suspending, "reorder")
        failed = await suspending.fail_diverged(execution_id, triggered_by="ops")

    assert failed.status is zart.ExecutionStatus.FAILED
    assert failed.error == {"kind": "non_deterministic_replay", "message": hold.reason}
    assert (await suspending.status(execution_id)).status is zart.ExecutionStatus.FAILED
    assert await suspending.list_pause_rules() == []
    assert effects(execution_id) == ["charge", "ship"]


async def test_resume_and_fail_refuse_an_execution_that_is_not_held(
    suspending: DurableScheduler,
) -> None:
    async with suspending.run_worker(**WORKER):
        execution_id = await suspending.start(order, {})
        CODE[execution_id] = "old"
        waiting = await wait_for_status(suspending, execution_id, zart.ExecutionStatus.WAITING)
    with pytest.raises(zart.InvalidExecutionState, match="no replay divergence holds it"):
        await suspending.resume_diverged(execution_id)
    with pytest.raises(zart.InvalidExecutionState, match="no replay divergence holds it"):
        await suspending.fail_diverged(execution_id)
    with pytest.raises(zart.ExecutionNotFound):
        await suspending.fail_diverged("no-such-execution")
    assert (await suspending.status(execution_id)).version == waiting.version  # unchanged


# -- parallel branches -------------------------------------------------------------------------


@zart.step("div-par-{branch}-{index}")
async def branch_step(branch: str, index: int) -> str:
    effect(f"{branch}{index}")
    if branch == "a" and CODE.get(zart.context().execution_id, "old") == "old":
        await asyncio.sleep(0.05)  # the first pass: a's steps finish after b's
    return f"{branch}{index}"


async def _branch(name: str) -> list[str]:
    return [await branch_step(name, 1), await branch_step(name, 2)]


@zart.durable("div-parallel")
async def parallel(data: dict[str, Any]) -> list[str]:
    code = CODE.get(zart.context().execution_id, "old")
    if code == "taskgroup":
        async with asyncio.TaskGroup() as group:
            second = group.create_task(_branch("b"))
            first = group.create_task(_branch("a"))
        a, b = first.result(), second.result()
    else:
        order_ = ("b", "a") if code == "swapped" else ("a", "b")
        found = dict(zip(order_, await asyncio.gather(*map(_branch, order_)), strict=True))
        a, b = found["a"], found["b"]
    await zart.wait_for_event("go")
    return [*a, *b, await branch_step("end", 1)]


@pytest.mark.parametrize("code", ["swapped", "taskgroup"])
async def test_parallel_branches_in_another_order_are_not_a_change(
    suspending: DurableScheduler, code: str
) -> None:
    async with suspending.run_worker(**WORKER):
        execution_id = await suspending.start(parallel, {})
        CODE[execution_id] = "old"
        await wait_for_status(suspending, execution_id, zart.ExecutionStatus.WAITING)
        CODE[execution_id] = code
        await suspending.offer_event(execution_id, "go", {})
        assert await suspending.wait(execution_id, timeout=10) == ["a1", "a2", "b1", "b2", "end1"]

    assert await suspending.divergence(execution_id) is None
    assert sorted(effects(execution_id)) == ["a1", "a2", "b1", "b2", "end1"]


async def test_a_rerun_that_preserves_a_later_step_is_not_a_divergence(
    suspending: DurableScheduler,
) -> None:
    async with suspending.run_worker(**WORKER):
        execution_id = await suspending.start(order, {})
        await wait_for_status(suspending, execution_id, zart.ExecutionStatus.WAITING)
        await suspending.offer_event(execution_id, "go", {})
        assert await suspending.wait(execution_id, timeout=10) == "done"
        # The charge runs again; the shipment (recorded after it) is kept.
        await suspending.rerun(execution_id, ["div-charge"], ["div-ship"])
        assert await suspending.wait(execution_id, timeout=10) == "done"

    assert await suspending.divergence(execution_id) is None
    assert effects(execution_id) == ["charge", "ship", "audit", "charge", "audit"]
