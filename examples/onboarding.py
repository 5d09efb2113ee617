"""Onboarding: the seed's workflow, run durably on an embedded SQLite file.

It shows a pydantic input and result, a step with exponential retry (it fails once, then
succeeds), a step name with a ``{placeholder}``, and values kept with ``zart.now`` and
``zart.capture`` so that every replay sees the same ones.

    python examples/onboarding.py
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel

import zart

DATABASE = Path("onboarding.db")


class OnboardingData(BaseModel):
    email: str
    plan: str = "starter"


class Customer(BaseModel):
    customer_id: str
    email: str


class Summary(BaseModel):
    customer_id: str
    workspace: str
    request_id: str
    created_at: datetime


@zart.step("send-welcome-email")
async def send_welcome_email(email: str) -> None:
    print(f"  send-welcome-email: mailing {email}")


@zart.step("create-customer", retry="exponential(3, 200ms)")
async def create_customer(email: str, request_id: str) -> Customer:
    attempt = zart.context().current_attempt
    print(f"  create-customer: attempt {attempt} (idempotency key {request_id[:8]})")
    if attempt == 0:
        raise ConnectionError("billing API timed out")
    return Customer(customer_id=f"cus_{uuid.uuid5(uuid.NAMESPACE_URL, email).hex[:8]}", email=email)


@zart.step("provision-{plan}")
async def provision(plan: str, customer_id: str) -> str:
    step = zart.context().step_name
    print(f"  {step}: creating a {plan} workspace for {customer_id}")
    return f"ws-{customer_id}-{plan}"


@zart.durable("onboarding")
async def onboarding(data: OnboardingData) -> Summary:
    created_at = await zart.now("created-at")
    # A fresh uuid4 on every replay would break idempotency: capture it once.
    request_id = await zart.capture("request-id", lambda: str(uuid.uuid4()))
    await send_welcome_email(data.email)
    customer = await create_customer(data.email, request_id)
    workspace = await provision(data.plan, customer.customer_id)
    return Summary(
        customer_id=customer.customer_id,
        workspace=workspace,
        request_id=request_id,
        created_at=created_at,
    )


async def main() -> None:
    async with zart.DurableScheduler(f"sqlite+aiosqlite:///{DATABASE}") as scheduler:
        await scheduler.migrate()
        async with scheduler.run_worker(concurrency=4, poll_interval=0.05):
            data = OnboardingData(email="ada@example.com", plan="pro")
            execution_id = await scheduler.start(onboarding, data, execution_id="signup-ada")
            print(f"started execution {execution_id}")
            summary = await scheduler.wait(execution_id, timeout=30)
            # Starting the same execution id again with the same input starts nothing new.
            again = await scheduler.start(onboarding, data, execution_id="signup-ada")
        record = await scheduler.status(execution_id)
        stored = (await scheduler.list_executions()).total
    print(f"status: {record.status.value}")
    print(f"summary ({type(summary).__name__}): {summary.model_dump_json(indent=2)}")
    print(f"second start returned {again!r}; executions stored: {stored}")


if __name__ == "__main__":
    for suffix in ("", "-wal", "-shm"):  # start from an empty database on every run
        Path(f"{DATABASE}{suffix}").unlink(missing_ok=True)
    asyncio.run(main())
