"""Follow-up: send a confirmation, sleep durably for 24 hours, send a follow-up.

The seed's delayed notification. ``zart.sleep("wait-24h", timedelta(hours=24))`` stores its
wake-up time and suspends the execution: for that day it is ``waiting``, with no lease and no
worker slot, and a worker that restarts meanwhile changes nothing. When the day is up a worker
claims it, the handler replays from the top (``send-confirmation`` returns its stored outcome
and does not mail again) and the follow-up goes out.

The script runs on virtual time (``zart.testing.durable_test_scheduler``), so the day passes at
once; the timestamps printed are virtual, and its SQLite file ``followup.db`` is kept for you to
look at. In production the same handler runs on a real scheduler and worker, and the follow-up
goes out a real day later, from whichever worker is running then:

    async with zart.DurableScheduler("postgresql+asyncpg://app@db/app") as scheduler:
        async with scheduler.run_worker():
            execution_id = await scheduler.start(delayed_notification, data)

    python examples/followup.py
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel

import zart
from zart.testing import clock_of, durable_test_scheduler, run_to_completion, run_until_waiting

DATABASE = Path("followup.db")


class NotificationData(BaseModel):
    email: str


class Sent(BaseModel):
    confirmation_at: datetime
    followup_at: datetime


@zart.step("send-confirmation")
async def send_confirmation(email: str) -> None:
    print(f"  send-confirmation: mailing {email}")


@zart.step("send-followup")
async def send_followup(email: str) -> None:
    print(f"  send-followup: mailing {email}")


@zart.durable("delayed-notification")
async def delayed_notification(data: NotificationData) -> Sent:
    await send_confirmation(data.email)
    confirmation_at = await zart.now("confirmation-sent-at")
    await zart.sleep("wait-24h", timedelta(hours=24))  # durable: survives restarts
    await send_followup(data.email)
    return Sent(confirmation_at=confirmation_at, followup_at=await zart.now("followup-sent-at"))


async def main() -> None:
    started = time.monotonic()
    async with durable_test_scheduler(f"sqlite+aiosqlite:///{DATABASE}") as scheduler:
        execution_id = await scheduler.start(
            delayed_notification, NotificationData(email="ada@example.com")
        )
        waiting = await run_until_waiting(scheduler, execution_id)
        print(f"  status: {waiting.status.value}, wakes at {waiting.claimable_at}")
        sent: Sent = await run_to_completion(scheduler, execution_id)
        record = await scheduler.status(execution_id)
        virtual_now = clock_of(scheduler).now()
    real = time.monotonic() - started

    print(f"\nconfirmation sent at {sent.confirmation_at}")
    print(f"follow-up sent at    {sent.followup_at}")
    print(f"virtual time between them: {sent.followup_at - sent.confirmation_at}")
    print(f"status: {record.status.value}, claimed by a worker {record.claim_count} time(s)")
    print(f"virtual clock at the end: {virtual_now}; real time taken: {real:.1f} s")


if __name__ == "__main__":
    for suffix in ("", "-wal", "-shm"):  # start from an empty database on every run
        Path(f"{DATABASE}{suffix}").unlink(missing_ok=True)
    asyncio.run(main())
