"""Versioning: a week-long expense approval across two deploys (``docs/versioning.md``).

Monday, deploy 1: Ada's expense is recorded and waits (up to a week) for a manager. Wednesday,
deploy 2 adds an escalation to a director, behind ``zart.patched("escalate")``: Ada's run,
recorded without it, keeps the old path when it resumes; Bob's, started now, escalates. Before
shipping deploy 3 (the patch removed, escalation for everyone), the replay check runs the
stored histories against it: Ada's run is still in flight and would break, so deploy 3 waits
until Thursday, when both approvals are in and nothing old is in flight any more.

A deploy here is the handler's body for that version (``VERSIONS``): the stored history is the
same rows whichever code reads it, as with a real redeploy. The script runs on virtual time
(``zart.testing.durable_test_scheduler``), so the week passes at once; its SQLite file
``versioning.db`` is kept for you to look at (``zart show expense-bob --database-url
sqlite+aiosqlite:///versioning.db`` names the patch). In CI, the same check is ``zart replay
myapp.workflows --database-url <a copy of production>``, which exits 1 on any divergence.

    python examples/versioning.py
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel

import zart
from zart.testing import (
    ReplayReport,
    clock_of,
    durable_test_scheduler,
    replay,
    run_to_completion,
    run_until_waiting,
)

DATABASE = Path("versioning.db")


class Expense(BaseModel):
    employee: str
    amount: int


@zart.step("record-expense")
async def record_expense(expense: Expense) -> str:
    print(f"  record-expense: {expense.employee}, {expense.amount} EUR")
    return f"EXP-{expense.employee}"


@zart.step("escalate-to-director")
async def escalate(reference: str) -> None:
    print(f"  escalate-to-director: {reference}")


@zart.step("pay-expense")
async def pay(reference: str, approver: str) -> str:
    print(f"  pay-expense: {reference}, approved by {approver}")
    return f"{reference} paid"


async def version_1(expense: Expense) -> str:
    reference = await record_expense(expense)
    decision = await zart.wait_for_event("approval", timeout=timedelta(days=7))
    return await pay(reference, decision["by"])


async def version_2(expense: Expense) -> str:
    reference = await record_expense(expense)
    if await zart.patched("escalate"):  # False for runs recorded before deploy 2
        await escalate(reference)
    decision = await zart.wait_for_event("approval", timeout=timedelta(days=7))
    return await pay(reference, decision["by"])


async def version_3(expense: Expense) -> str:
    reference = await record_expense(expense)
    zart.deprecate_patch("escalate")  # no run from before deploy 2 is in flight any more
    await escalate(reference)
    decision = await zart.wait_for_event("approval", timeout=timedelta(days=7))
    return await pay(reference, decision["by"])


VERSIONS: dict[int, Callable[[Expense], Awaitable[str]]] = {
    1: version_1,
    2: version_2,
    3: version_3,
}
DEPLOYED = {"version": 1}


@zart.durable("expense-approval")
async def expense_approval(expense: Expense) -> str:
    return await VERSIONS[DEPLOYED["version"]](expense)


async def check(scheduler: zart.DurableScheduler, version: int) -> bool:
    """The replay check of deploy ``version``: may it ship (no run in flight would break)?"""
    running, DEPLOYED["version"] = DEPLOYED["version"], version
    try:
        report: ReplayReport = await replay(scheduler)
    finally:
        DEPLOYED["version"] = running
    in_flight = [v for v in report.divergences if v.status is not zart.ExecutionStatus.COMPLETED]
    print(
        f"replay check of deploy {version}: {len(report.verdicts)} execution(s),"
        f" {len(in_flight)} in flight would diverge"
    )
    for verdict in in_flight:
        print(f"  {verdict.execution_id} ({verdict.status.value}): {verdict.divergence}")
    return not in_flight


async def main() -> None:
    async with durable_test_scheduler(f"sqlite+aiosqlite:///{DATABASE}") as scheduler:
        clock = clock_of(scheduler)

        print("Monday, deploy 1")
        ada = await scheduler.start(
            expense_approval, Expense(employee="ada", amount=900), execution_id="expense-ada"
        )
        print(f"  {ada}: {(await run_until_waiting(scheduler, ada)).status.value}")

        clock.advance(timedelta(days=2))
        print("Wednesday, deploy 2")
        assert await check(scheduler, 2)
        DEPLOYED["version"] = 2
        bob = await scheduler.start(
            expense_approval, Expense(employee="bob", amount=4000), execution_id="expense-bob"
        )
        print(f"  {bob}: {(await run_until_waiting(scheduler, bob)).status.value}")
        print("Wednesday, deploy 3?")
        if not await check(scheduler, 3):
            print("  not yet: deploy 3 waits")

        clock.advance(timedelta(days=1))
        print("Thursday: the approvals arrive")
        for execution_id in (ada, bob):
            await scheduler.offer_event(execution_id, "approval", {"by": "grace"})
            print(f"  {execution_id}: {await run_to_completion(scheduler, execution_id)}")
        for execution_id in (ada, bob):
            steps = (await scheduler.execution_detail(execution_id)).steps
            print(f"  {execution_id} steps: {', '.join(s.step.name for s in steps)}")

        print("Thursday, deploy 3")
        assert await check(scheduler, 3)
        DEPLOYED["version"] = 3
        cy = await scheduler.start(
            expense_approval, Expense(employee="cy", amount=50), execution_id="expense-cy"
        )
        await run_until_waiting(scheduler, cy)
        await scheduler.offer_event(cy, "approval", {"by": "grace"})
        print(f"  {cy}: {await run_to_completion(scheduler, cy)}")
        # Every history, Bob's with its patch marker included, follows deploy 3.
        report = await replay(scheduler)
        print(f"after deploy 3: {len(report.divergences)} of {len(report.verdicts)} diverge")
        for verdict in report.divergences:
            print(f"  {verdict.execution_id} ({verdict.status.value}, finished: harmless)")


if __name__ == "__main__":
    for suffix in ("", "-wal", "-shm"):  # start from an empty database on every run
        Path(f"{DATABASE}{suffix}").unlink(missing_ok=True)
    asyncio.run(main())
