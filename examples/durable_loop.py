"""Durable loops: one step per iteration, each with its own name.

The list to loop over is fetched inside a step, so a replay loops over the same list even if
the source changed meanwhile. Each iteration gets a unique step name in one of two ways: a
``{index}`` placeholder in the step's name, or ``.named(...)`` at the call site.

    python examples/durable_loop.py
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel

import zart
from tests.factories import run_on
from zart.repositories import steps as steps_repo

DATABASE = Path("durable_loop.db")

# Stands in for a table that other code keeps changing.
REPORT_TABLE = {
    "2026-Q1": [("north", 91.5), ("south", 72.0), ("east", 85.25), ("west", 64.0)],
}


class Report(BaseModel):
    region: str
    value: float


class Processed(BaseModel):
    region: str
    score: int
    flagged: bool


class BatchInput(BaseModel):
    batch: str


class BatchOutput(BaseModel):
    total: int
    flagged: list[str]


@zart.step("fetch-reports")
async def fetch_reports(batch: str) -> list[Report]:
    rows = REPORT_TABLE[batch]
    print(f"  fetch-reports: {len(rows)} reports in {batch}")
    return [Report(region=region, value=value) for region, value in rows]


@zart.step("process-report-{index}")
async def process_report(index: int, report: Report) -> Processed:
    score = int(report.value * 10)
    print(f"  process-report-{index}: {report.region} scored {score}")
    return Processed(region=report.region, score=score, flagged=score < 800)


@zart.step("notify-stakeholder")
async def notify_stakeholder(email: str, region: str) -> None:
    print(f"  {zart.context().step_name}: told {email} about {region}")


@zart.durable("report-batch")
async def report_batch(data: BatchInput) -> BatchOutput:
    reports = await fetch_reports(data.batch)  # replays return this very list
    processed = [await process_report(i, report) for i, report in enumerate(reports)]
    for i, item in enumerate(processed):
        if item.flagged:
            await notify_stakeholder("team@example.com", item.region).named(f"notify-{i}")
    return BatchOutput(total=len(processed), flagged=[p.region for p in processed if p.flagged])


async def main() -> None:
    async with zart.DurableScheduler(f"sqlite+aiosqlite:///{DATABASE}") as scheduler:
        await scheduler.migrate()
        async with scheduler.run_worker(poll_interval=0.05):
            execution_id = await scheduler.start(report_batch, BatchInput(batch="2026-Q1"))
            result = await scheduler.wait(execution_id, timeout=30)
        record = await scheduler.status(execution_id)
        async with scheduler.engine.connect() as conn:
            names = [step.name for step in await run_on(conn, steps_repo.list_steps, record.run_id)]
    print(f"result: {result.total} reports, flagged: {', '.join(result.flagged)}")
    print(f"steps recorded, in order: {', '.join(names)}")


if __name__ == "__main__":
    for suffix in ("", "-wal", "-shm"):  # start from an empty database on every run
        Path(f"{DATABASE}{suffix}").unlink(missing_ok=True)
    asyncio.run(main())
