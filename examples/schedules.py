"""Schedules: cron rules that start durable executions, once per fire time.

Two schedules:

- ``nightly-report`` is declared on its handler, at 02:30 Berlin time. It runs across the last
  weekend of October, when Berlin's clocks go back and 02:30 happens twice: it fires once a
  night all the same. The handler reads the fire time it serves from ``zart.context()``.
- ``hourly-sync`` is added at run time with ``overlap="skip"``: its first run waits for an
  event, so the next hour is skipped rather than started beside it; once the event arrives
  the run finishes and the following hour fires again. Then it is paused and resumed.

The script runs on virtual time (``zart.testing.durable_test_scheduler``), so the days pass at
once, and fires each schedule with ``zart.testing.fire_schedules``, which hands back the
execution a firing started (no polling); its SQLite file ``schedules.db`` is kept for you to
look at (``zart schedules list --database-url sqlite+aiosqlite:///schedules.db``). In
production the same code runs on a real scheduler: every worker fires due schedules, and each
fire time starts exactly one execution however many workers run.

    python examples/schedules.py
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import zart
from zart.testing import clock_of, durable_test_scheduler, fire_schedules, run_until_waiting

DATABASE = Path("schedules.db")
BERLIN = ZoneInfo("Europe/Berlin")


@zart.step("build-report")
async def build_report(day: str) -> str:
    return f"report for {day}"


@zart.durable("nightly-report", schedule="30 2 * * *", timezone="Europe/Berlin")
async def nightly_report() -> str:
    fire_time = zart.context().fire_time
    assert fire_time is not None  # started by its schedule
    local = fire_time.astimezone(BERLIN)
    await build_report(local.date().isoformat())
    return f"{local:%Y-%m-%d %H:%M %Z} ({fire_time:%H:%M} UTC)"


@zart.durable("hourly-sync")
async def hourly_sync(data: dict[str, str]) -> str:
    await zart.wait_for_event("upstream-ready")  # the first run waits here for a while
    return f"synced {data['source']}"


def execution_id(schedule: zart.ScheduleRecord) -> str:
    """The execution a firing starts: ``{schedule}@{fire time in UTC}Z``."""
    assert schedule.next_fire_at is not None
    return f"{schedule.name}@{schedule.next_fire_at:%Y-%m-%dT%H:%M:%SZ}"


async def fire_next(scheduler: zart.DurableScheduler, name: str) -> tuple[str, list[str]]:
    """Fire the schedule's next fire time on the virtual clock: the execution id that fire
    time names, and the executions it started (none when its overlap policy skipped it)."""
    schedule = await scheduler.get_schedule(name)
    started = await fire_schedules(scheduler, at=schedule.next_fire_at)
    return execution_id(schedule), started


async def main() -> None:
    start = datetime(2030, 10, 25, 12, tzinfo=UTC)
    async with durable_test_scheduler(
        f"sqlite+aiosqlite:///{DATABASE}", start=start, schedules=["nightly-report"]
    ) as scheduler:
        print("nightly-report (30 2 * * *, Europe/Berlin), over the night the clocks go back:")
        for _ in range(3):
            _, [fired] = await fire_next(scheduler, "nightly-report")
            print(f"  {fired}: {await scheduler.wait(fired)}")

        print("\nhourly-sync (0 * * * *, overlap=skip):")
        await scheduler.add_schedule(
            "hourly-sync", hourly_sync, "0 * * * *", payload={"source": "crm"}, overlap="skip"
        )
        _, [first] = await fire_next(scheduler, "hourly-sync")
        waiting = await run_until_waiting(scheduler, first)
        print(f"  {first}: {waiting.status.value} for 'upstream-ready'")
        skipped, started = await fire_next(scheduler, "hourly-sync")
        assert started == []
        stored = await scheduler.list_executions(task_name="hourly-sync")
        print(f"  {skipped}: skipped, the previous run is unfinished ({stored.total} execution)")
        await scheduler.offer_event(first, "upstream-ready", {"ok": True})
        print(f"  {first}: {await scheduler.wait(first)} after the event")
        _, [third] = await fire_next(scheduler, "hourly-sync")
        print(f"  {third}: started, the previous run having finished")

        paused = await scheduler.pause_schedule("hourly-sync")
        clock_of(scheduler).advance("3h")
        resumed = await scheduler.resume_schedule("hourly-sync")
        assert paused.next_fire_at is not None
        assert resumed.next_fire_at is not None
        print(
            f"\npaused for 3 hours, then resumed: next fire time {resumed.next_fire_at:%H:%M} UTC"
            f" (was {paused.next_fire_at:%H:%M} UTC; paused times are not caught up)"
        )

        print("\nschedules:")
        for schedule in await scheduler.list_schedules():
            print(
                f"  {schedule.name:<15} {schedule.cron:<11} {schedule.timezone:<14}"
                f" overlap={schedule.overlap.value:<5} catchup={schedule.catchup.value}"
            )


if __name__ == "__main__":
    for suffix in ("", "-wal", "-shm"):  # start from an empty database on every run
        Path(f"{DATABASE}{suffix}").unlink(missing_ok=True)
    asyncio.run(main())
