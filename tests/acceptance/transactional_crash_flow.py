"""A 3-step durable handler whose transactional steps write to an application table, for the
exactly-once test. With CRASH_FLOW_HANG=1, step 2 hangs after its write (not yet committed),
so the test can kill the worker between the write and the step's return."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table

import zart
from tests.acceptance.crash_flow import journal

app_metadata = MetaData()
charges = Table(
    "app_charges",
    app_metadata,
    Column("id", Integer, primary_key=True),
    Column("entry", String(100), nullable=False),  # no unique constraint: duplicates would show
)


@zart.step("charge-{n}", transactional=True)
async def charge(n: int, journal_path: str) -> int:
    await zart.session().execute(charges.insert().values(entry=f"charge {n}"))
    journal(journal_path, f"wrote {n}")
    if n == 2 and os.environ.get("CRASH_FLOW_HANG") == "1":
        await asyncio.sleep(3600)  # the test kills the worker here
    return n


@zart.durable("transactional-crash-flow")
async def transactional_crash_flow(data: dict[str, Any]) -> int:
    total = 0
    for n in range(1, 4):
        total += await charge(n, data["journal"])
    return total
