"""Cron schedules, managed at run time: add, pause, resume, remove, list. Firing them is the
worker's schedules loop (:mod:`zart.schedules`). See ``docs/schedules.md``."""

from __future__ import annotations

from typing import Any

from zart.errors import ScheduleNotFound
from zart.models import CatchupPolicy, OverlapPolicy
from zart.repositories import schedules as schedules_repo
from zart.repositories.records import ScheduleRecord
from zart.scheduler.base import SchedulerBase
from zart.scheduler.starts import Target, start_request
from zart.schedules.cron import parse_cron
from zart.schedules.plans import DEFAULT_CATCHUP, DEFAULT_OVERLAP, ScheduleSpec, check_name


class ScheduleOperations(SchedulerBase):
    """The schedules part of :class:`~zart.DurableScheduler`."""

    async def add_schedule(
        self,
        name: str,
        task: Target,
        cron: str,
        *,
        timezone: str = "UTC",
        payload: Any = None,
        overlap: OverlapPolicy | str = DEFAULT_OVERLAP,
        catchup: CatchupPolicy | str = DEFAULT_CATCHUP,
    ) -> ScheduleRecord:
        """Start ``task`` (a durable handler or its task name) on the cron schedule ``cron``
        (5 fields, or 6 with seconds first) read in ``timezone``, each execution with
        ``payload``; stored under ``name`` and fired by every running worker, exactly once per
        fire time.

        Adding an existing name updates it in place (idempotent, so an application may call
        it at every start): a paused schedule stays paused, and an unchanged rule keeps its
        next fire time. Raises :class:`~zart.InvalidSchedule` (expression, time zone, policy,
        name), :class:`~zart.UnknownTask` or :class:`~zart.InvalidPayload`, storing nothing.
        """
        name = check_name(name)
        spec = ScheduleSpec.create(cron, timezone=timezone, overlap=overlap, catchup=catchup)
        request = await start_request(
            task,
            payload,
            None,
            max_payload_bytes=self.runtime.max_payload_bytes,
            live_task_names=self._live_task_names,
        )
        task_name, stored = request.task_name, request.payload
        now = self.clock.now()
        async with self.store.transaction() as db:
            return await db.run(
                schedules_repo.save_schedule,
                name=name,
                task_name=task_name,
                cron=spec.cron.expression,
                timezone=spec.cron.timezone,
                payload=stored,
                overlap=spec.overlap,
                catchup=spec.catchup,
                next_fire_at=spec.cron.next_after(now),
                now=now,
            )

    async def get_schedule(self, name: str) -> ScheduleRecord:
        """The schedule ``name``; :class:`~zart.ScheduleNotFound` when there is none."""
        async with self.store.reading() as db:
            record = await db.run(schedules_repo.get_schedule, name)
        if record is None:
            raise ScheduleNotFound(name)
        return record

    async def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule (declared on handlers and added at run time), by name."""
        async with self.store.reading() as db:
            return await db.run(schedules_repo.list_schedules)

    async def pause_schedule(self, name: str) -> ScheduleRecord:
        """Stop firing ``name`` until :meth:`resume_schedule` (running executions go on).
        Idempotent; :class:`~zart.ScheduleNotFound` when there is no such schedule."""
        async with self.store.transaction() as db:
            record = await db.run(schedules_repo.pause_schedule, name, now=self.clock.now())
        if record is None:
            raise ScheduleNotFound(name)
        return record

    async def resume_schedule(self, name: str) -> ScheduleRecord:
        """Fire ``name`` again, from its next fire time after now: times that passed while
        it was paused are not caught up. Idempotent; :class:`~zart.ScheduleNotFound`."""
        now = self.clock.now()
        async with self.store.transaction() as db:
            current = await db.run(schedules_repo.get_schedule, name, lock=True)
            if current is None:
                raise ScheduleNotFound(name)
            following = parse_cron(current.cron, current.timezone).next_after(now)
            record = await db.run(
                schedules_repo.resume_schedule, name, next_fire_at=following, now=now
            )
        assert record is not None  # the row is locked (or SQLite's writer lock is held)
        return record

    async def remove_schedule(self, name: str) -> None:
        """Delete ``name`` and its firing history; the executions it started are kept. A
        schedule declared on a handler comes back when a worker running it starts: remove
        ``schedule=`` from the decorator too. :class:`~zart.ScheduleNotFound` when unknown."""
        async with self.store.transaction() as db:
            removed = await db.run(schedules_repo.remove_schedule, name)
        if not removed:
            raise ScheduleNotFound(name)
