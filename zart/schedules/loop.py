"""The schedules loop each worker runs: fire the schedules that are due, then sleep until the
earliest next fire time or the poll interval, whichever comes first.

Every worker runs it; the fire key makes that safe (see :mod:`zart.repositories.schedules`).
While no schedule is due, the loop only reads the earliest next fire time. One tick is one
transaction: take the due schedules (locked), decide with the pure
:func:`~zart.schedules.plans.plan_firings` which fire times to fire, apply the overlap
policy, record each firing and create its execution (with its NOTIFY, so workers claim it at
once), and advance ``next_fire_at``. Only the loop reads the clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from zart.clock import Clock
from zart.errors import ExecutionAlreadyExists, InvalidSchedule
from zart.logs import log
from zart.models import OverlapPolicy
from zart.outages import Outage, is_transient
from zart.repositories import children as children_repo
from zart.repositories import executions as executions_repo
from zart.repositories import schedules as schedules_repo
from zart.repositories import wakeups
from zart.repositories.executors import ConnectionExecutor
from zart.repositories.records import ScheduleRecord
from zart.repositories.store import Store
from zart.schedules.cron import parse_cron
from zart.schedules.plans import ScheduleSpec, execution_id_for, plan_firings

#: Seconds before looking again at a due schedule another worker is firing.
RECHECK_SECONDS = 0.05

#: Schedules handled per tick (the rest are due still and go in the next tick, at once).
BATCH = 100

#: The handler's ``timeout`` of a task name (``None``: no deadline, or the task is unknown).
TimeoutOf = Callable[[str], timedelta | None]


@dataclass(frozen=True, slots=True)
class DeclaredSchedule:
    """A schedule declared on a durable handler (``@zart.durable(name, schedule=...)``); its
    name is the task name."""

    task_name: str
    spec: ScheduleSpec


@dataclass
class TickReport:
    """What one tick did (for the worker and for tests)."""

    started: list[str] = field(default_factory=list)
    skipped: list[tuple[str, datetime]] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    #: True when the tick handled a full batch: more schedules may be due right now.
    more: bool = False


class ScheduleLoop:
    """Fires due schedules. ``on_started`` runs after the commit of a tick that started
    executions (to wake an in-process claim loop), ``on_cancelled(execution_id)`` for each
    execution the ``cancel_previous`` policy cancelled (to stop it at once if it runs here);
    ``compensated()`` names the tasks with ``on_cancel``, whose cancelled executions get a
    compensation."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        channel: str = wakeups.CHANNEL,
        timeout_of: TimeoutOf = lambda _name: None,
        on_started: Callable[[], Any] = lambda: None,
        on_cancelled: Callable[[str], Any] = lambda _id: None,
        compensated: Callable[[], Collection[str]] = frozenset,
        worker_id: str | None = None,
        outage: Outage | None = None,
    ) -> None:
        self.store = store
        #: Where its failures for an outage go (the worker's: one warning per outage).
        self.outage = outage if outage is not None else Outage("schedules loop")
        self.clock = clock
        self.channel = channel
        self._timeout_of = timeout_of
        self._on_started = on_started
        self._on_cancelled = on_cancelled
        self._compensated = compensated
        self._worker_id = worker_id

    async def sync(self, declared: Iterable[DeclaredSchedule]) -> list[ScheduleRecord]:
        """Store the schedules declared on handlers (at worker start). A paused one stays
        paused; one whose rule is unchanged keeps its next fire time (so missed times are
        caught up by its policy)."""
        saved: list[ScheduleRecord] = []
        now = self.clock.now()
        async with self.store.transaction() as db:
            for item in declared:
                cron = item.spec.cron
                saved.append(
                    await db.run(
                        schedules_repo.save_schedule,
                        name=item.task_name,
                        task_name=item.task_name,
                        cron=cron.expression,
                        timezone=cron.timezone,
                        payload=None,
                        overlap=item.spec.overlap,
                        catchup=item.spec.catchup,
                        next_fire_at=cron.next_after(now),
                        now=now,
                    )
                )
        return saved

    # -- the loop -------------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event, poll_interval: float) -> None:
        """Tick, then wait for the earliest next fire time (on the injected clock), the poll
        interval, or ``stopping``; until ``stopping`` is set."""
        while not stopping.is_set():
            due: datetime | None = None
            pause = poll_interval
            try:
                # One read while nothing is due: the tick's write transaction (which locks the
                # due schedules) only when the earliest fire time has come.
                async with self.store.reading() as db:
                    due = await db.run(schedules_repo.earliest_next_fire_at)
                if due is not None and due <= self.clock.now():
                    report = await self.tick()
                    self.outage.succeeded("schedules")
                    if report.more:  # a full batch: more schedules may be due right now
                        continue
                    if report.started or report.cancelled:  # fired: the next fire time moved
                        continue
            except Exception as exc:
                if not is_transient(exc):
                    raise
                pause = self.outage.failed("schedules", exc, action="schedules_tick_failed")
                due = None
            else:
                self.outage.succeeded("schedules")
            await self._wait(stopping, pause, due)

    async def _wait(self, stopping: asyncio.Event, longest: float, due: datetime | None) -> None:
        """Wait until ``due`` (on the clock), ``longest`` real seconds, or ``stopping``.

        Only a fire time within the poll interval is slept for on the clock: a long sleep
        registered on a test's FakeClock would look like a wake-up to skip time to, and the
        poll catches a far-away fire time anyway (moving a FakeClock past it is seen within
        one poll interval)."""
        waits: set[asyncio.Task[Any]] = {
            asyncio.create_task(stopping.wait(), name="zart-schedules-stopping")
        }
        timeout = longest
        delay = None if due is None else (due - self.clock.now()).total_seconds()
        if due is not None and delay is not None and delay <= 0:
            # Due, yet this tick did not take it: another worker holds it. Look again soon.
            timeout = min(longest, RECHECK_SECONDS)
        elif due is not None and delay is not None and delay <= longest:
            timeout = delay
            waits.add(asyncio.create_task(self.clock.sleep_until(due), name="zart-schedules-sleep"))
        try:
            await asyncio.wait(waits, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    # -- one tick -------------------------------------------------------------------------

    async def tick(self) -> TickReport:
        """Fire every schedule due at the clock's ``now`` (one transaction)."""
        now = self.clock.now()
        report = TickReport()
        async with self.store.transaction() as db:
            due = await db.run(schedules_repo.take_due_schedules, now=now, limit=BATCH)
            for schedule in due:
                await self._fire(db, schedule, now, report)
        report.more = len(due) >= BATCH
        for execution_id in report.cancelled:
            self._on_cancelled(execution_id)
        if report.started:
            self._on_started()
        return report

    async def _fire(
        self, db: ConnectionExecutor, schedule: ScheduleRecord, now: datetime, report: TickReport
    ) -> None:
        assert schedule.next_fire_at is not None  # take_due_schedules only returns due ones
        try:
            cron = parse_cron(schedule.cron, schedule.timezone)
        except InvalidSchedule as exc:  # e.g. a time zone this machine's tz database lacks
            log(
                "schedule_invalid",
                f"schedule {schedule.name!r} cannot fire: {exc}",
                level=40,
                schedule=schedule.name,
            )
            await db.run(
                schedules_repo.advance_schedule,
                schedule.name,
                next_fire_at=now + timedelta(hours=1),
                last_fire_at=None,
                now=now,
            )
            return
        plan = plan_firings(cron, schedule.catchup, next_fire_at=schedule.next_fire_at, now=now)
        if plan.dropped_from is not None:
            log(
                "schedule_missed",
                f"schedule {schedule.name!r} missed fire times since"
                f" {plan.dropped_from.isoformat()}; catch-up policy {schedule.catchup.value!r}",
                schedule=schedule.name,
                missed_since=plan.dropped_from.isoformat(),
                catchup=schedule.catchup.value,
            )
        fired: datetime | None = None
        for fire_at in plan.fire_times:
            if await self._fire_once(db, schedule, fire_at, now, report):
                fired = fire_at
        await db.run(
            schedules_repo.advance_schedule,
            schedule.name,
            next_fire_at=plan.next_fire_at,
            last_fire_at=fired,
            now=now,
        )

    async def _fire_once(
        self,
        db: ConnectionExecutor,
        schedule: ScheduleRecord,
        fire_at: datetime,
        now: datetime,
        report: TickReport,
    ) -> bool:
        """Fire one fire time under the overlap policy; True when this call started it."""
        previous = None
        if schedule.overlap is not OverlapPolicy.ALLOW:
            found = await db.run(schedules_repo.previous_execution, schedule.name)
            previous = None if found is None or found.is_terminal else found
        fields: dict[str, Any] = {"schedule": schedule.name, "fire_at": fire_at.isoformat()}
        if previous is not None and schedule.overlap is OverlapPolicy.SKIP:
            if await db.run(
                schedules_repo.record_firing,
                schedule_name=schedule.name,
                fire_at=fire_at,
                execution_id=None,
                now=now,
            ):
                report.skipped.append((schedule.name, fire_at))
                log(
                    "schedule_skipped_overlap",
                    f"schedule {schedule.name!r} skipped {fire_at.isoformat()}: execution"
                    f" {previous.execution_id!r} is still {previous.status.value}",
                    previous=previous.execution_id,
                    **fields,
                )
            return False
        execution_id = execution_id_for(schedule.name, fire_at)
        if not await db.run(
            schedules_repo.record_firing,
            schedule_name=schedule.name,
            fire_at=fire_at,
            execution_id=execution_id,
            now=now,
        ):
            return False  # another worker fired this time
        cancelled = None
        if previous is not None:  # cancel_previous
            cancelled = await db.run(
                children_repo.cancel_family,
                previous.execution_id,
                now=now,
                compensated=self._compensated(),
                channel=self.channel,
            )
        if previous is not None and cancelled is not None:
            report.cancelled.append(previous.execution_id)
            log(
                "schedule_cancelled_previous",
                f"schedule {schedule.name!r} cancelled {previous.execution_id!r}",
                previous=previous.execution_id,
                **fields,
            )
        timeout = self._timeout_of(schedule.task_name)
        try:
            created = await db.run(
                executions_repo.create_execution,
                execution_id=execution_id,
                task_name=schedule.task_name,
                payload=schedule.payload,
                now=now,
                deadline_at=None if timeout is None else now + timeout,
            )
        except ExecutionAlreadyExists as exc:  # someone started this id by hand
            log("schedule_fire_conflict", str(exc), level=30, **fields)
            return False
        if created.created:
            await db.run(schedules_repo.mark_fire_time, execution_id, fire_at)
            await db.run(wakeups.notify, self.channel, schedule.task_name)
            report.started.append(execution_id)
            log(
                "schedule_fired",
                f"schedule {schedule.name!r} fired {fire_at.isoformat()}: {execution_id}",
                execution_id=execution_id,
                worker_id=self._worker_id,
                **fields,
            )
        return True
