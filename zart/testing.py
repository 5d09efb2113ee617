"""Test durable handlers without waiting: a virtual clock and a scheduler that skips time.

A handler that sleeps for a day or waits a week for an event is awkward to test against the
real clock. Here the scheduler reads a :class:`FakeClock`, and :func:`run_to_completion` moves
that clock straight to the next wake-up whenever the execution waits, so a 24-hour sleep or a
one-day event deadline passes at once. Nothing in this module is imported by ``import zart``;
import it from your tests::

    import pytest
    from zart.testing import durable_test_scheduler, run_to_completion


    @pytest.fixture
    async def scheduler():
        async with durable_test_scheduler() as scheduler:  # a temporary SQLite file
            yield scheduler


    async def test_follow_up_is_sent_a_day_later(scheduler):
        execution_id = await scheduler.start(delayed_notification, {"email": "a@b.c"})
        assert await run_to_completion(scheduler, execution_id) == "sent"

An event without a timeout cannot be reached by moving the clock: deliver it with
``scheduler.offer_event(...)`` (an event offered before the execution gets to its wait is kept
for it); :func:`run_to_completion` raises :class:`WaitingForEvent` rather than hang.

``durable_test_scheduler(engine=app_engine)`` runs on the application's engine and tables;
every block starts with Zart's tables empty; cron schedules fire only where a test asks
(``schedules=True`` and :func:`fire_schedules`). Fixtures for pytest:
:mod:`zart.pytest_plugin`. The whole recipe: ``docs/testing.md``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, overload

from sqlalchemy.ext.asyncio import AsyncEngine

from zart.durations import parse_duration
from zart.errors import ConfigurationError, WaitTimedOut, ZartError
from zart.models import ExecutionStatus, StepKind
from zart.repositories import children as children_repo
from zart.repositories import reset as reset_repo
from zart.repositories.messages import MESSAGE_PREFIX
from zart.repositories.records import ExecutionRecord
from zart.runtime.registry import ExecutionId, declared_schedules
from zart.runtime.replays import DEFAULT_LIMIT as DEFAULT_REPLAY_LIMIT
from zart.runtime.replays import ReplayReport, ReplayVerdict
from zart.scheduler import DurableScheduler
from zart.schedules.loop import DeclaredSchedule
from zart.worker import Worker

R = TypeVar("R")

#: Where a :class:`FakeClock` starts unless told otherwise: a fixed instant, so that the
#: timestamps a test sees are the same on every run.
DEFAULT_START = datetime(2030, 1, 1, tzinfo=UTC)

# Worker options durable_test_scheduler uses unless given others: a short poll, a short stop.
_TEST_WORKER_OPTIONS: dict[str, Any] = {"poll_interval": 0.02, "shutdown_timeout": 5.0}

# How long run_to_completion pauses (real seconds) when nothing it can do moves the execution:
# it starts short and doubles, so a run that is busy in a step is not polled in a tight loop.
_FIRST_PAUSE = 0.001
_LONGEST_PAUSE = 0.02


class WaitingForEvent(ZartError):
    """:func:`run_to_completion` found the execution waiting for an event that has no timeout:
    moving the clock cannot finish it. ``events`` names what it waits for."""

    def __init__(self, execution_id: str, events: Sequence[str]) -> None:
        self.execution_id = execution_id
        self.events = tuple(events)
        if not self.events:
            message = (
                f"execution {execution_id!r} is waiting with no wake-up time and no event wait"
                " recorded; only an event, a cancel or an admin action can wake it"
            )
        else:
            names = ", ".join(repr(name) for name in self.events)
            noun = "event" if len(self.events) == 1 else "events"
            deliver = f"scheduler.offer_event({execution_id!r}, {self.events[0]!r}, payload)"
            if self.events[0].startswith(MESSAGE_PREFIX):  # zart.recv(topic)
                topic = self.events[0][len(MESSAGE_PREFIX) :].rsplit("/", 1)[0]
                deliver = f"scheduler.send({execution_id!r}, {topic!r}, message)"
            message = (
                f"execution {execution_id!r} waits for {noun} {names} with no timeout, so"
                f" skipping time cannot finish it; deliver it with {deliver}"
            )
        super().__init__(message)


class FakeClock:
    """A :class:`zart.clock.Clock` whose time moves only when told to.

    ``now()`` is a timezone-aware UTC datetime that starts at ``start`` (default
    :data:`DEFAULT_START`) and stays there until :meth:`advance` or :meth:`advance_to` moves it
    forward. ``await sleep_until(when)`` returns once the virtual time reaches ``when``: the
    sleepers a move makes due are woken earliest first (ties in the order they began to
    sleep), and each sees the new time. Use it from one event loop.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = _utc(DEFAULT_START if start is None else start, "start")
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._arrival = itertools.count()

    def now(self) -> datetime:
        """The current virtual time, timezone-aware UTC."""
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        """Return once the virtual time is at or past ``when`` (at once if it is already)."""
        when = _utc(when, "when")
        if when <= self._now:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (when, next(self._arrival), future))
        # A cancelled sleeper cancels its future too; the heap skips it from then on.
        await future

    def advance(self, delta: timedelta | float | str) -> datetime:
        """Move the virtual time forward by ``delta`` (a timedelta, seconds, or ``"24h"``),
        wake the sleepers now due and return the new time. A negative ``delta`` raises
        ``ValueError``."""
        negative = (isinstance(delta, timedelta) and delta < timedelta(0)) or (
            isinstance(delta, int | float) and not isinstance(delta, bool) and delta < 0
        )
        if negative:
            raise ValueError(f"a FakeClock never goes backwards; cannot advance by {delta!r}")
        return self.advance_to(self._now + parse_duration(delta, name="clock advance"))

    def advance_to(self, when: datetime) -> datetime:
        """Move the virtual time forward to ``when`` (timezone-aware), wake the sleepers now
        due and return the new time. A ``when`` before the current time raises ``ValueError``;
        the current time itself is allowed and changes nothing."""
        when = _utc(when, "when")
        if when < self._now:
            raise ValueError(
                f"a FakeClock never goes backwards: it is {self._now.isoformat()},"
                f" cannot go to {when.isoformat()}"
            )
        self._now = when
        while self._sleepers and self._sleepers[0][0] <= when:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
        return when

    def pending(self) -> tuple[datetime, ...]:
        """When the sleepers waiting in memory on this clock wake up, earliest first."""
        return tuple(when for when, _, future in sorted(self._sleepers) if not future.done())

    def next_wakeup(self) -> datetime | None:
        """When the earliest sleeper waiting in memory wakes up; ``None`` if there is none."""
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)  # cancelled sleepers
        return self._sleepers[0][0] if self._sleepers else None

    def __repr__(self) -> str:
        return f"FakeClock({self._now.isoformat()}, {len(self.pending())} sleeping)"


def _utc(when: datetime, name: str) -> datetime:
    if not isinstance(when, datetime) or when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, not {when!r}")
    return when.astimezone(UTC)


def clock_of(scheduler: DurableScheduler) -> FakeClock:
    """The :class:`FakeClock` a scheduler reads (``scheduler.clock``, typed as one).

    Raises :class:`~zart.ConfigurationError` when the scheduler runs on another clock.
    """
    clock = scheduler.clock
    if not isinstance(clock, FakeClock):
        raise ConfigurationError(
            "this needs a scheduler on a zart.testing.FakeClock: use durable_test_scheduler(),"
            " or DurableScheduler(..., clock=FakeClock(), inline_wait_limit=0)"
        )
    return clock


@overload
async def run_to_completion(
    scheduler: DurableScheduler,
    execution_id: ExecutionId[R],
    *,
    timeout: float = 30.0,  # noqa: ASYNC109
) -> R: ...
@overload
async def run_to_completion(
    scheduler: DurableScheduler,
    execution_id: str,
    *,
    timeout: float = 30.0,  # noqa: ASYNC109
) -> Any: ...
async def run_to_completion(
    scheduler: DurableScheduler,
    execution_id: str,
    *,
    timeout: float = 30.0,  # noqa: ASYNC109 - real seconds, like DurableScheduler.wait's
) -> Any:
    """Drive an execution to its end, skipping the time it would wait, and return its result.

    The scheduler must read a :class:`FakeClock` and run a worker in this process (both are
    true of :func:`durable_test_scheduler`). Whenever the execution waits for a timer (a
    sleep, a retry back-off, an event deadline, the handler's timeout) and nothing else runs
    on the in-process workers, the clock jumps to the wake-up time and the workers are woken;
    a wait held in memory on the clock (below ``inline_wait_limit``) is skipped the same way.

    The end is reported as :meth:`DurableScheduler.wait` reports it: the handler's result
    (rebuilt into its return type), :class:`~zart.ExecutionFailed` or
    :class:`~zart.ExecutionCancelled`. Raises :class:`WaitingForEvent` when the execution waits
    for an event that has no timeout, and :class:`~zart.WaitTimedOut` after ``timeout`` real
    seconds.
    """
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    await _drive(scheduler, execution_id, timeout, give_up, skip_time=True)
    return await scheduler.wait(execution_id, timeout=max(give_up - loop.time(), 0.0))


async def run_until_waiting(
    scheduler: DurableScheduler,
    execution_id: str,
    *,
    timeout: float = 30.0,  # noqa: ASYNC109 - real seconds, like DurableScheduler.wait's
) -> ExecutionRecord:
    """Let the execution run, without moving the clock, until it waits durably (for a timer
    in the virtual future or for an event) or finishes; return its record.

    Useful to look at a waiting execution (its ``claimable_at`` is its wake-up time), or to
    deliver an event part-way through a timeout: ``clock_of(scheduler).advance("3h")``, then
    ``offer_event``, then :func:`run_to_completion`. A wait held in memory counts as running;
    :func:`durable_test_scheduler` suspends every wait, so there are none there. Raises
    :class:`~zart.WaitTimedOut` after ``timeout`` real seconds.
    """
    give_up = asyncio.get_running_loop().time() + timeout
    return await _drive(scheduler, execution_id, timeout, give_up, skip_time=False)


async def _drive(
    scheduler: DurableScheduler,
    execution_id: str,
    limit: float,
    give_up: float,
    *,
    skip_time: bool,
) -> ExecutionRecord:
    clock = clock_of(scheduler)
    _workers_of(scheduler)  # refuse at once, before reading anything, when there is none
    loop = asyncio.get_running_loop()
    pause = _FIRST_PAUSE
    while True:
        record = await scheduler.status(execution_id)
        if record.is_terminal:
            return record
        workers = _workers_of(scheduler)
        busy = any(worker.in_flight for worker in workers)
        parked = _parked(clock, record)
        if parked and not skip_time:
            return record
        family = [record]
        if parked:  # a parent waiting for its children: their wake-ups are its own
            children = await _unfinished_children(scheduler, record)
            # read again after its children: a child that ended since has woken it
            record = await scheduler.status(execution_id)
            family = [record, *children]
            if not _parked(clock, record):
                continue
        targets = [_next_wake_up(clock, member, busy) for member in family] if skip_time else []
        target = min((t for t in targets if t is not None), default=None)
        if target is not None:
            clock.advance_to(target)
            _wake(workers)
            pause = _FIRST_PAUSE
            continue
        stuck = all(_parked(clock, m) and m.claimable_at is None for m in family)
        if stuck and not busy:
            raise await _waiting_for_event(scheduler, family[-1])
        if not all(_parked(clock, member) for member in family):
            _wake(workers)  # it is due: have the workers look now rather than at their next poll
        remaining = give_up - loop.time()
        if remaining <= 0:
            raise WaitTimedOut(execution_id, limit)
        await asyncio.sleep(min(pause, remaining))
        pause = min(pause * 2, _LONGEST_PAUSE)


def _parked(clock: FakeClock, record: ExecutionRecord) -> bool:
    return record.status is ExecutionStatus.WAITING and (
        record.claimable_at is None or record.claimable_at > clock.now()
    )


async def _unfinished_children(
    scheduler: DurableScheduler, record: ExecutionRecord
) -> list[ExecutionRecord]:
    """The unfinished children of ``record``, and theirs (``zart.run_child``)."""
    found: list[ExecutionRecord] = []
    parents = [record.execution_id]
    async with scheduler.store.reading() as db:
        while parents:
            children = [
                child
                for parent in parents
                for child in await db.run(children_repo.children_of, parent)
                if not child.is_terminal
            ]
            found += children
            parents = [child.execution_id for child in children]
    return found


def _next_wake_up(clock: FakeClock, record: ExecutionRecord, busy: bool) -> datetime | None:
    """The virtual time to jump to, if any: the earliest in-memory sleeper, or the execution's
    own wake-up. The latter only while no other run is in flight, or no later than a sleeper:
    a jump past a running execution's lease expiry would let it be claimed a second time."""
    sleeper = clock.next_wakeup()
    timer = record.claimable_at
    waits = record.status in (ExecutionStatus.WAITING, ExecutionStatus.SCHEDULED)
    if not waits or timer is None or timer <= clock.now():
        return sleeper
    if sleeper is None:
        return None if busy else timer
    return min(timer, sleeper)


def _workers_of(scheduler: DurableScheduler) -> list[Worker]:
    # Waking the in-process workers is what makes a jump of the clock take effect at once.
    workers = list(scheduler.workers)
    if not workers:
        raise ConfigurationError(
            "run_to_completion needs a worker running in this process: start one with"
            " `async with scheduler.run_worker():` or use durable_test_scheduler()"
        )
    return workers


def _wake(workers: Sequence[Worker]) -> None:
    for worker in workers:
        worker.wake()


async def _waiting_for_event(
    scheduler: DurableScheduler, record: ExecutionRecord
) -> WaitingForEvent:
    waits = (await scheduler.pending_waits([record])).get(record.execution_id, ())
    events = [step.name for step in waits if step.kind is StepKind.EVENT]
    return WaitingForEvent(record.execution_id, events)


@asynccontextmanager
async def durable_test_scheduler(
    url: str | None = None,
    *,
    engine: AsyncEngine | None = None,
    schema: str | None = None,
    start: datetime | None = None,
    schedules: bool | Iterable[str] = False,
    **worker_options: Any,
) -> AsyncIterator[DurableScheduler]:
    """A migrated :class:`~zart.DurableScheduler` on a :class:`FakeClock`, with a worker
    running in this process: what a test suite needs to run durable handlers.

    - ``engine``: the application's engine (its test database, where its own tables are), so
      that transactional steps and ``start(..., session=...)`` see the application's tables;
      it stays open. Or ``url``: a database of Zart's own. By default a new SQLite file in a
      temporary directory, removed on exit.
    - Each block starts from a clean slate: Zart's tables are emptied when it is entered
      (the application's tables are the application's to reset), so nothing one test stored
      (executions, schedules and their next fire times, events) is seen by the next.
    - ``schedules``: cron schedules fire only in a test that asks for them. ``False`` (the
      default): none is stored or fired. ``True`` (every declared schedule of a registered
      handler) or task names (those): stored when the block is entered; they fire when the
      test calls :func:`fire_schedules`, which returns the executions they started.
    - ``start``: where the clock starts (default :data:`DEFAULT_START`). ``scheduler.clock`` is
      the :class:`FakeClock`; :func:`clock_of` returns it typed as one.
    - ``worker_options``: passed to :meth:`~zart.DurableScheduler.run_worker` (the default poll
      interval is short: 20 ms). The worker runs every durable handler registered when the
      block is entered, so import the modules that define them first.

    Every wait suspends the execution (``inline_wait_limit=0``), none is held in memory, so
    which virtual time each step sees does not depend on how fast the test machine is.
    """
    if url is not None and engine is not None:
        raise ConfigurationError("give durable_test_scheduler a URL or an engine, not both")
    directory: Path | None = None
    if url is None and engine is None:
        directory = Path(tempfile.mkdtemp(prefix="zart-test-"))
        url = f"sqlite+aiosqlite:///{(directory / 'zart.db').as_posix()}"
    try:
        clock = FakeClock(start)
        async with DurableScheduler(
            url, engine=engine, schema=schema, clock=clock, inline_wait_limit=0
        ) as scheduler:
            await scheduler.migrate()
            async with scheduler.store.transaction() as db:
                await db.run(reset_repo.delete_all_rows)
            options = {**_TEST_WORKER_OPTIONS, **worker_options, "schedules": False}
            async with scheduler.run_worker(**options) as worker:
                await worker.schedules.sync(_declared(schedules, worker.task_names))
                yield scheduler
    finally:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


def _declared(wanted: bool | Iterable[str], running: Sequence[str]) -> list[DeclaredSchedule]:
    if wanted is False:
        return []
    names = list(running) if wanted is True else list(wanted)
    declared = declared_schedules(names)
    if wanted is not True:
        found = {schedule.task_name for schedule in declared}
        for name in names:
            if name not in found:
                raise ConfigurationError(
                    f"schedules=: no durable handler {name!r} with a declared schedule is"
                    " registered"
                )
    return declared


async def fire_schedules(
    scheduler: DurableScheduler, at: datetime | None = None
) -> list[ExecutionId[Any]]:
    """Fire the schedules due at ``at`` and return the executions they started (ready to
    await with :func:`run_to_completion`), in one tick, now: no waiting for a poll.

    The :class:`FakeClock` first moves to ``at``: by default to the earliest next fire time of
    the stored schedules when that lies ahead (so ``fire_schedules(scheduler)`` fires the
    next one), else it stays where it is (after ``clock_of(scheduler).advance_to(...)``).
    Each schedule's catch-up and overlap policies apply as in production.
    """
    clock = clock_of(scheduler)
    worker = _workers_of(scheduler)[0]
    if at is None:
        upcoming = [s.next_fire_at for s in await scheduler.list_schedules() if not s.paused]
        due = [when for when in upcoming if when is not None]
        at = max(min(due), clock.now()) if due else clock.now()
    clock.advance_to(at)
    report = await worker.schedules.tick()
    _wake(_workers_of(scheduler))
    return [ExecutionId(execution_id) for execution_id in report.started]


async def replay(
    scheduler: DurableScheduler,
    *,
    task_names: Sequence[str] | None = None,
    limit: int = DEFAULT_REPLAY_LIMIT,
) -> ReplayReport:
    """The replay check of ``zart replay`` as a test's call: the ``limit`` most recent stored
    executions of each task (default: every task registered here), in flight and finished,
    replayed against the code imported now; no step runs, nothing is written. Assert
    ``report.ok``, or look at ``report.divergences`` (``docs/versioning.md``)."""
    return await scheduler.replay(task_names=task_names, limit=limit)


__all__ = [
    "DEFAULT_START",
    "FakeClock",
    "ReplayReport",
    "ReplayVerdict",
    "WaitingForEvent",
    "clock_of",
    "durable_test_scheduler",
    "fire_schedules",
    "replay",
    "run_to_completion",
    "run_until_waiting",
]
