"""A short tour of Zart on an embedded SQLite file (``demo.db``). ``make run`` runs it.

It defines an onboarding workflow (steps plus a durable handler), starts an in-process worker,
runs one execution (one step fails once and is retried, one optional step fails for good and
the handler uses a default), then reads back from the database what Zart stored: the
execution's status and result, and every step with its attempts.

    python examples/demo.py
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from pydantic import BaseModel

import zart

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _timeline, from any directory
from _timeline import print_execution

DATABASE = Path("demo.db")


class Signup(BaseModel):
    email: str
    plan: str


class Account(BaseModel):
    customer_id: str
    workspace: str
    referral_bonus: int


@zart.step("send-welcome-email")
async def send_welcome_email(email: str) -> str:
    print(f"  [step] send-welcome-email: mailing {email}")
    return "msg-001"


@zart.step("create-customer", retry="exponential(3, 250ms)")
async def create_customer(email: str) -> str:
    attempt = zart.context().current_attempt
    if attempt == 0:
        print("  [step] create-customer: attempt 0 fails (billing API timed out)")
        raise ConnectionError("billing API timed out")
    print(f"  [step] create-customer: attempt {attempt} succeeds")
    return "cus_7f3a"


@zart.step("fetch-referral-bonus")
async def fetch_referral_bonus(email: str) -> int:
    print("  [step] fetch-referral-bonus: fails; no retry policy, so zart.step_or gives 0")
    raise LookupError(f"no referral found for {email}")


@zart.step("provision-{plan}")
async def provision(plan: str, customer_id: str) -> str:
    print(f"  [step] provision-{plan}: creating the workspace")
    return f"ws-{customer_id}-{plan}"


@zart.durable("onboarding")
async def onboarding(data: Signup) -> Account:
    await zart.now("created-at")
    await send_welcome_email(data.email)
    customer_id = await create_customer(data.email)
    bonus = await zart.step_or(fetch_referral_bonus(data.email), 0)
    workspace = await provision(data.plan, customer_id)
    return Account(customer_id=customer_id, workspace=workspace, referral_bonus=bonus)


async def main() -> None:
    async with zart.DurableScheduler(f"sqlite+aiosqlite:///{DATABASE}") as scheduler:
        await scheduler.migrate()
        print("1. Created Zart's tables (scheduler.migrate()).")
        print("2. Started a worker in this process and an execution of 'onboarding':")
        async with scheduler.run_worker(concurrency=8, poll_interval=0.05):
            signup = Signup(email="ada@example.com", plan="pro")
            execution_id = await scheduler.start(onboarding, signup, execution_id="signup-ada")
            account = await scheduler.wait(execution_id, timeout=30)
        print(f"3. scheduler.wait() returned {account!r}")
        print("4. What the database now holds:\n")
        await print_execution(scheduler, execution_id)
        again = await scheduler.start(onboarding, signup, execution_id="signup-ada")
        total = (await scheduler.list_executions()).total
    print(f"\n5. Starting {again!r} again with the same input started nothing new")
    print(f"   ({total} execution stored): the execution id is an idempotency key.")
    print("\nIf a worker dies mid-execution, another one replays the handler from the top and")
    print("finished steps return their stored results: see examples/crash_recovery.py.")


if __name__ == "__main__":
    for suffix in ("", "-wal", "-shm"):  # start from an empty database on every run
        Path(f"{DATABASE}{suffix}").unlink(missing_ok=True)
    print(f"Zart demo: durable execution on the SQLite file {DATABASE.resolve()}\n")
    asyncio.run(main())
