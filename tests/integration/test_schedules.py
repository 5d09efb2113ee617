"""Cron schedules on both backends with an injected clock: exactly-once firing with several
workers, the overlap and catch-up policies, pause/resume/remove, handler-declared schedules
and the fire time a handler sees."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

import zart
from tests.factories import run_on
from zart import DurableScheduler, ExecutionStatus
from zart.models import ScheduleRow, table_of
from zart.repositories import schedules as schedules_repo
from zart.runtime.registry import DurableHandler, unregister
from zart.schedules.loop import ScheduleLoop
from zart.testing import FakeClock
from zart.worker import WorkerSettings
from zart.worker.pruning import PruneLoop

T0 = datetime(2030, 1, 1, tzinfo=UTC)
schedules = table_of(ScheduleRow)

#: execution_id -> the fire time the handler saw, per run
seen_fire_times: dict[str, list[datetime | None]] = {}


@zart.durable("sched-report")
async def report(data: dict[str, str] | None = None) -> str:
    info = zart.context()
    seen_fire_times.setdefault(info.execution_id, []).append(info.fire_time)
    return "done"


async def declared_body() -> str:
    info = zart.context()
    seen_fire_times.setdefault(info.execution_id, []).append(info.fire_time)
    return f"fired for {info.fire_time:%H:%M}" if info.fire_time else "no fire time"


@pytest.fixture
def declared() -> Iterator[DurableHandler[[], str]]:
    """A handler with a declared every-minute schedule, registered for this test only: every
    worker started meanwhile with the default task names would store and fire it."""
    handler = zart.durable("sched-declared", schedule="* * * * *", catchup="skip")(declared_body)
    try:
        yield handler
    finally:
        unregister("sched-declared")


@pytest.fixture(autouse=True)
def forget_fire_times() -> None:
    # Scheduled execution ids are deterministic: the same in both backend variants of a test.
    seen_fire_times.clear()


@pytest.fixture
async def clocked(database_url: str) -> AsyncIterator[DurableScheduler]:
    """A scheduler on a fresh database whose clock is a FakeClock at T0 (no worker)."""
    async with DurableScheduler(database_url, clock=FakeClock(T0)) as scheduler:
        yield scheduler


def loop_of(scheduler: DurableScheduler) -> ScheduleLoop:
    return ScheduleLoop(scheduler.store, scheduler.clock, channel=scheduler.runtime.channel)


def clock(scheduler: DurableScheduler) -> FakeClock:
    assert isinstance(scheduler.clock, FakeClock)
    return scheduler.clock


async def executions_of(scheduler: DurableScheduler, task: str) -> list[zart.ExecutionRecord]:
    page = await scheduler.list_executions(task_name=task, limit=1000, descending=False)
    return sorted(page.items, key=lambda r: r.execution_id)


async def firings(scheduler: DurableScheduler, name: str) -> list[tuple[datetime, str | None]]:
    async with scheduler.engine.connect() as conn:
        found = await run_on(conn, schedules_repo.list_firings, name)
    return sorted((f.fire_at, f.execution_id) for f in found)


# -- exactly once ----------------------------------------------------------------------------


async def test_three_loops_ticking_together_fire_each_time_exactly_once(
    database_url: str,
) -> None:
    shared = FakeClock(T0)
    async with (
        DurableScheduler(database_url, clock=shared) as first,
        DurableScheduler(database_url, clock=shared) as second,
        DurableScheduler(database_url, clock=shared) as third,
    ):
        await first.add_schedule("every-minute", report, "* * * * *", overlap="allow")
        loops = [loop_of(s) for s in (first, second, third)]

        for _ in range(5):
            shared.advance("1m")
            reports = await asyncio.gather(*(loop.tick() for loop in loops))
            assert sum(len(r.started) for r in reports) == 1

        started = await executions_of(first, "sched-report")
        assert [r.execution_id for r in started] == [
            f"every-minute@2030-01-01T00:0{m}:00Z" for m in range(1, 6)
        ]
        assert [r.fire_time for r in started] == [T0 + timedelta(minutes=m) for m in range(1, 6)]
        assert len(await firings(first, "every-minute")) == 5


async def test_the_fire_key_stops_a_second_firing_of_one_time(
    clocked: DurableScheduler,
) -> None:
    await clocked.add_schedule("keyed", report, "0 * * * *", overlap="allow")
    clock(clocked).advance("1h")
    assert len((await loop_of(clocked).tick()).started) == 1
    # A worker that read the schedule before it advanced tries the same fire time again.
    async with clocked.engine.begin() as conn:
        await conn.execute(
            update(schedules)
            .where(schedules.c.name == "keyed")
            .values(next_fire_at=T0 + timedelta(hours=1))
        )

    again = await loop_of(clocked).tick()

    assert again.started == []
    assert len(await executions_of(clocked, "sched-report")) == 1
    assert (await clocked.get_schedule("keyed")).next_fire_at == T0 + timedelta(hours=2)


@pytest.mark.usefixtures("declared")
async def test_three_running_workers_fire_each_time_once_and_run_it(
    database_url: str,
) -> None:
    shared = FakeClock(T0)
    async with (
        DurableScheduler(database_url, clock=shared) as first,
        DurableScheduler(database_url, clock=shared) as second,
        DurableScheduler(database_url, clock=shared) as third,
    ):
        workers = [
            s.run_worker(task_names=["sched-declared"], poll_interval=0.02)
            for s in (first, second, third)
        ]
        async with workers[0], workers[1], workers[2]:
            for minute in range(1, 4):
                shared.advance("1m")
                execution_id = f"sched-declared@2030-01-01T00:0{minute}:00Z"
                assert await _eventually_finished(first, execution_id) == f"fired for 00:0{minute}"

        finished = await executions_of(first, "sched-declared")
        assert [r.execution_id for r in finished] == [
            f"sched-declared@2030-01-01T00:0{m}:00Z" for m in range(1, 4)
        ]
        assert all(len(seen_fire_times[r.execution_id]) == 1 for r in finished)
        assert len(await firings(first, "sched-declared")) == 3


async def _eventually_finished(scheduler: DurableScheduler, execution_id: str) -> object:
    for _ in range(500):
        try:
            return await scheduler.wait(execution_id, timeout=10)
        except zart.ExecutionNotFound:
            await asyncio.sleep(0.01)
    raise AssertionError(f"{execution_id} was never started")


# -- overlap ----------------------------------------------------------------------------------


async def test_overlap_skip_skips_while_the_previous_execution_is_unfinished(
    clocked: DurableScheduler, caplog: pytest.LogCaptureFixture
) -> None:
    await clocked.add_schedule("skipper", report, "* * * * *", overlap="skip")
    loop = loop_of(clocked)
    clock(clocked).advance("1m")
    (first,) = (await loop.tick()).started

    clock(clocked).advance("1m")
    with caplog.at_level(logging.INFO, logger="zart"):
        skipped = await loop.tick()

    assert skipped.started == []
    assert skipped.skipped == [("skipper", T0 + timedelta(minutes=2))]
    assert any(getattr(r, "action", None) == "schedule_skipped_overlap" for r in caplog.records)
    assert await firings(clocked, "skipper") == [
        (T0 + timedelta(minutes=1), first),
        (T0 + timedelta(minutes=2), None),
    ]

    await clocked.cancel(first)  # finished now: the next time fires again
    clock(clocked).advance("1m")
    assert (await loop.tick()).started == ["skipper@2030-01-01T00:03:00Z"]


async def test_overlap_allow_starts_anyway(clocked: DurableScheduler) -> None:
    await clocked.add_schedule("allower", report, "* * * * *", overlap="allow")
    loop = loop_of(clocked)
    for _ in range(2):
        clock(clocked).advance("1m")
        await loop.tick()

    records = await executions_of(clocked, "sched-report")
    assert [r.status for r in records] == [ExecutionStatus.SCHEDULED] * 2


async def test_overlap_cancel_previous_cancels_then_starts(clocked: DurableScheduler) -> None:
    await clocked.add_schedule("canceller", report, "* * * * *", overlap="cancel_previous")
    loop = loop_of(clocked)
    clock(clocked).advance("1m")
    (first,) = (await loop.tick()).started
    clock(clocked).advance("1m")

    second = await loop.tick()

    assert second.cancelled == [first]
    assert second.started == ["canceller@2030-01-01T00:02:00Z"]
    assert (await clocked.status(first)).status is ExecutionStatus.CANCELLED
    assert (await clocked.status(second.started[0])).status is ExecutionStatus.SCHEDULED


# -- catch-up after downtime -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("catchup", "expected_hours"),
    [("skip", []), ("latest", [4]), ("all", [1, 2, 3, 4])],
)
async def test_catchup_after_downtime(
    clocked: DurableScheduler, catchup: str, expected_hours: list[int]
) -> None:
    await clocked.add_schedule("hourly", report, "0 * * * *", overlap="allow", catchup=catchup)
    clock(clocked).advance(timedelta(hours=4, minutes=30))  # no worker ran meanwhile

    await loop_of(clocked).tick()

    started = await executions_of(clocked, "sched-report")
    assert [r.fire_time for r in started] == [T0 + timedelta(hours=h) for h in expected_hours]
    schedule = await clocked.get_schedule("hourly")
    assert schedule.next_fire_at == T0 + timedelta(hours=5)
    assert schedule.last_fire_at == (
        T0 + timedelta(hours=expected_hours[-1]) if expected_hours else None
    )


@pytest.mark.usefixtures("declared")
async def test_a_restarted_worker_catches_up_a_declared_schedule(database_url: str) -> None:
    shared = FakeClock(T0)
    async with DurableScheduler(database_url, clock=shared) as scheduler:
        async with scheduler.run_worker(task_names=["sched-declared"], poll_interval=0.02):
            pass  # stored the declared schedule, then stopped: downtime begins
        shared.advance(timedelta(minutes=3, seconds=30))

        async with scheduler.run_worker(task_names=["sched-declared"], poll_interval=0.02):
            # catchup="skip": 00:01..00:03 were missed for good; 00:04 fires on time.
            shared.advance(timedelta(seconds=30))
            result = await _eventually_finished(scheduler, "sched-declared@2030-01-01T00:04:00Z")

        assert result == "fired for 00:04"
        assert [r.execution_id for r in await executions_of(scheduler, "sched-declared")] == [
            "sched-declared@2030-01-01T00:04:00Z"
        ]


# -- control plane ---------------------------------------------------------------------------


async def test_pause_resume_and_remove(clocked: DurableScheduler) -> None:
    added = await clocked.add_schedule(
        "managed", "sched-report", "0 9 * * *", timezone="Europe/Berlin", payload={"k": "v"}
    )
    assert added.next_fire_at == datetime(2030, 1, 1, 8, tzinfo=UTC)
    assert (added.overlap, added.catchup, added.paused) == (
        zart.OverlapPolicy.SKIP,
        zart.CatchupPolicy.LATEST,
        False,
    )

    assert (await clocked.pause_schedule("managed")).paused
    clock(clocked).advance("2d")
    assert (await loop_of(clocked).tick()).started == []

    resumed = await clocked.resume_schedule("managed")
    assert not resumed.paused
    # The paused days are not caught up: the next fire time after now.
    assert resumed.next_fire_at == datetime(2030, 1, 3, 8, tzinfo=UTC)
    clock(clocked).advance("8h")
    assert (await loop_of(clocked).tick()).started == ["managed@2030-01-03T08:00:00Z"]
    assert (await clocked.status("managed@2030-01-03T08:00:00Z")).payload == {"k": "v"}

    await clocked.remove_schedule("managed")
    assert await clocked.list_schedules() == []
    # Its history outlives it (until pruned by age: see the test of schedule_history).
    assert await firings(clocked, "managed") == [
        (datetime(2030, 1, 3, 8, tzinfo=UTC), "managed@2030-01-03T08:00:00Z")
    ]
    assert (await clocked.status("managed@2030-01-03T08:00:00Z")).task_name == "sched-report"


async def test_unknown_schedule_names_are_a_clear_error(clocked: DurableScheduler) -> None:
    for operation in (
        clocked.pause_schedule,
        clocked.resume_schedule,
        clocked.remove_schedule,
        clocked.get_schedule,
    ):
        with pytest.raises(zart.ScheduleNotFound, match="no schedule named 'ghost'"):
            await operation("ghost")


async def test_bad_schedules_are_refused_and_store_nothing(clocked: DurableScheduler) -> None:
    with pytest.raises(zart.InvalidSchedule, match="has 4 fields"):
        await clocked.add_schedule("bad", report, "0 9 * *")
    with pytest.raises(zart.InvalidSchedule, match="unknown time zone"):
        await clocked.add_schedule("bad", report, "0 9 * * *", timezone="Europe/Atlantis")
    with pytest.raises(zart.UnknownTask):
        await clocked.add_schedule("bad", "no-such-task", "0 9 * * *")
    with pytest.raises(zart.InvalidPayload):
        await clocked.add_schedule("bad", report, "0 9 * * *", payload={"k": 1})

    assert await clocked.list_schedules() == []


async def test_adding_again_updates_in_place_and_keeps_a_pause(clocked: DurableScheduler) -> None:
    await clocked.add_schedule("again", report, "0 9 * * *")
    await clocked.pause_schedule("again")
    clock(clocked).advance("1h")

    same = await clocked.add_schedule("again", report, "0 9 * * *", overlap="allow")
    changed = await clocked.add_schedule("again", report, "30 9 * * *")

    assert same.paused
    assert same.overlap is zart.OverlapPolicy.ALLOW
    assert same.next_fire_at == datetime(2030, 1, 1, 9, tzinfo=UTC)  # rule unchanged: kept
    assert changed.next_fire_at == datetime(2030, 1, 1, 9, 30, tzinfo=UTC)
    assert changed.paused
    assert [s.name for s in await clocked.list_schedules()] == ["again"]


@pytest.mark.usefixtures("declared")
async def test_a_declared_schedule_is_stored_at_worker_start_and_stays_paused(
    clocked: DurableScheduler,
) -> None:
    async with clocked.run_worker(task_names=["sched-declared"], poll_interval=0.02):
        pass
    (stored,) = await clocked.list_schedules()
    assert (stored.name, stored.task_name, stored.cron, stored.timezone) == (
        "sched-declared",
        "sched-declared",
        "* * * * *",
        "UTC",
    )
    assert stored.catchup is zart.CatchupPolicy.SKIP
    await clocked.pause_schedule("sched-declared")

    async with clocked.run_worker(task_names=["sched-declared"], poll_interval=0.02):
        pass

    assert (await clocked.get_schedule("sched-declared")).paused
    async with clocked.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(schedules)) == 1


async def test_executions_started_otherwise_have_no_fire_time(clocked: DurableScheduler) -> None:
    execution_id = await clocked.start(report, None)
    async with clocked.run_worker(task_names=["sched-report"], poll_interval=0.02):
        assert await clocked.wait(execution_id, timeout=10) == "done"

    assert seen_fire_times[execution_id] == [None]
    assert (await clocked.status(execution_id)).fire_time is None


async def test_firing_history_is_kept_for_a_window_also_after_its_schedule_is_removed(
    clocked: DurableScheduler,
) -> None:
    loop = loop_of(clocked)
    await clocked.add_schedule("kept", "sched-report", "* * * * *", overlap="allow")
    await clocked.add_schedule("gone", "sched-report", "* * * * *", overlap="allow")
    for _ in range(5):  # 00:01 .. 00:05
        clock(clocked).advance("1m")
        assert len((await loop.tick()).started) == 2
    await clocked.remove_schedule("gone")
    assert len(await firings(clocked, "gone")) == 5

    def pruner(history: str) -> PruneLoop:
        settings = WorkerSettings(schedule_history=history)
        return PruneLoop(clocked.store, clocked.clock, settings, "test", firings=True)

    # At 00:05 with 150 s of history: 00:01 and 00:02 go, of both schedules.
    assert pruner("150s").needed
    await pruner("150s").tick()
    minutes = [datetime(2030, 1, 1, 0, m, tzinfo=UTC) for m in (3, 4, 5)]
    assert [at for at, _ in await firings(clocked, "kept")] == minutes
    assert [at for at, _ in await firings(clocked, "gone")] == minutes

    # A day later: the removed schedule's history is gone; the live one keeps its latest
    # started firing, which its overlap policy compares the next one with.
    clock(clocked).advance("1d")
    await pruner("1h").tick()
    assert await firings(clocked, "gone") == []
    assert await firings(clocked, "kept") == [(minutes[-1], "kept@2030-01-01T00:05:00Z")]
    # The executions it started are not the firing history's to delete.
    assert (await clocked.status("gone@2030-01-01T00:01:00Z")).task_name == "sched-report"


def test_schedule_history_is_a_positive_duration_or_none() -> None:
    assert WorkerSettings().history_kept_for == timedelta(days=30)
    assert WorkerSettings(schedule_history=None).history_kept_for is None
    assert zart.Settings(schedule_history="none").schedule_history is None
    assert zart.Settings(schedule_history="90d").worker_settings().history_kept_for == timedelta(
        days=90
    )
    with pytest.raises(zart.ConfigurationError, match="schedule_history must be positive"):
        WorkerSettings(schedule_history=0)
    with pytest.raises(zart.ConfigurationError, match="invalid schedule_history 'soon'"):
        zart.Settings(schedule_history="soon")
