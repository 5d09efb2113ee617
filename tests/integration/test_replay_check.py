"""The replay check of a deploy (``zart.testing.replay``, as ``zart replay`` runs it) over 200
stored executions of a changed handler, on both backends: it reports exactly the ones that
diverge, runs no step body, and writes nothing (every table is the same before and after)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

import zart
from tests.integration.runtime_helpers import FAST_WORKER, count, runs, wait_for_status
from zart import DurableScheduler
from zart.models.base import metadata
from zart.testing import replay

#: the code "deployed": "old" records the histories, "new" is checked against them
DEPLOYED = {"code": "old"}
EXECUTIONS = 200


@zart.step("rc-price")
async def price(n: int) -> int:
    count("price")
    return n * 10


@zart.step("rc-discount")
async def discount(n: int) -> int:
    count("discount")
    return n


@zart.step("rc-rebate")  # the new code's name for the discount: a rename
async def rebate(n: int) -> int:
    count("rebate")
    return n


@zart.step("rc-ship")
async def ship(n: int) -> str:
    count("ship")
    return f"shipped {n}"


@zart.durable("rc-order")
async def order(data: dict[str, int]) -> str:
    n = data["n"]
    total = await price(n)
    if n % 3 == 0:  # a third of the orders get a discount, which the new code renamed
        total -= await (discount(n) if DEPLOYED["code"] == "old" else rebate(n))
    if n % 2 == 0:  # half of them are still in flight, waiting for an approval
        await zart.wait_for_event("approved")
    return f"{total} {await ship(n)}"


async def dump(scheduler: DurableScheduler) -> dict[str, list[Any]]:
    """Every row of every table, in a stable order."""
    found: dict[str, list[Any]] = {}
    async with scheduler.engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = (await conn.execute(select(table))).all()
            found[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return found


async def test_the_replay_check_reports_exactly_the_diverging_executions(
    scheduler: DurableScheduler,
) -> None:
    DEPLOYED["code"] = "old"
    async with scheduler.run_worker(**FAST_WORKER):
        ids = [await scheduler.start(order, {"n": n}) for n in range(EXECUTIONS)]
        for n, execution_id in enumerate(ids):
            if n % 2:
                await scheduler.wait(execution_id, timeout=60)
        for execution_id in ids[::2]:
            await wait_for_status(scheduler, execution_id, zart.ExecutionStatus.WAITING)
    before = await dump(scheduler)
    bodies = dict(runs)

    assert (await replay(scheduler, task_names=["rc-order"], limit=500)).ok  # the same code
    DEPLOYED["code"] = "new"
    report = await replay(scheduler, task_names=["rc-order"], limit=500)

    assert len(report.verdicts) == EXECUTIONS
    expected = {ids[n] for n in range(EXECUTIONS) if n % 3 == 0}
    assert {v.execution_id for v in report.divergences} == expected
    for verdict in report.divergences:
        assert verdict.step == "rc-discount"
        assert "the code now runs step 'rc-rebate' there" in (verdict.divergence or "")
    statuses = {v.status for v in report.divergences}
    assert statuses == {zart.ExecutionStatus.WAITING, zart.ExecutionStatus.COMPLETED}
    assert dict(runs) == bodies  # no step body ran
    assert await dump(scheduler) == before  # nothing written


async def test_the_replay_check_takes_the_most_recent_executions(
    scheduler: DurableScheduler,
) -> None:
    DEPLOYED["code"] = "old"
    async with scheduler.run_worker(**FAST_WORKER):
        ids = [await scheduler.start(order, {"n": n}) for n in (1, 5, 7)]
        for execution_id in ids:
            await scheduler.wait(execution_id, timeout=30)
    report = await replay(scheduler, task_names=["rc-order"], limit=2)
    assert len(report.verdicts) == 2
    assert report.ok
    assert (await replay(scheduler, task_names=["no-such-task"])).verdicts == ()
    for limit in (0, -1, True, 1.5):
        with pytest.raises(zart.InvalidPayload, match="limit must be a positive integer"):
            await replay(scheduler, limit=limit)  # type: ignore[arg-type]
