"""The worker: a small supervisor of named loops that claims executions and runs them.

- the **claim loop** claims as many ready executions as there are free slots, with their
  recorded outcomes (limited queues: :mod:`zart.worker.queues`), then waits for a wake-up, a
  freed slot or the poll interval;
- the **heartbeat loop** renews the leases of the executions in flight (stopping those whose
  lease was lost) and records that the worker is alive;
- the **listener loop** (PostgreSQL, :mod:`zart.worker.listener`) LISTENs for wake-ups and
  wakes the claim loop at once;
- the **schedules loop** fires due cron schedules (:mod:`zart.schedules.loop`); the schedules
  declared on this worker's handlers are stored when it starts;
- executions claimed ahead of their due time wait in :mod:`zart.worker.ahead` until then;
- a dead worker's executions are taken over first, one at a time (:mod:`zart.worker.takeovers`).

Every statement goes through the runtime's store, chosen for the engine once. An idle claim
loop sleeps until the next execution becomes claimable or the poll interval (NOTIFY cuts it
short; SQLite polls). Each claimed execution runs as its own named task; a side loop that dies
stops the worker loudly. Shutdown is graceful: stop claiming, let runs finish within a time
limit, then cancel the rest and hand their leases back so another worker resumes them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable, Coroutine, Iterable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from zart.errors import ConfigurationError
from zart.logs import log, logger
from zart.models.queues import DEFAULT_QUEUE
from zart.outages import is_transient
from zart.repositories import claims, leases, wakeups
from zart.repositories import workers as workers_repo
from zart.repositories.records import ClaimedExecution, ExecutionRecord, Lease, StepRecord
from zart.runtime.execution import Runtime, execute
from zart.runtime.registry import compensated_names, declared_schedules, find_handler
from zart.schedules.loop import ScheduleLoop
from zart.worker.ahead import CLAIM_CHUNK, RELEASE_ERRORS, ClaimAhead, handing_back
from zart.worker.instruments import WorkerInstruments
from zart.worker.listener import Listener, wait_for
from zart.worker.pruning import PruneLoop
from zart.worker.queues import QueueClaims
from zart.worker.settings import WorkerSettings
from zart.worker.takeovers import Takeovers

#: Seconds the worker's copy of the pause rules may age at most (beyond a short poll
#: interval). A change made in this process, or announced by NOTIFY, is reloaded at once.
PAUSE_RULES_AGE = 1.0


T = TypeVar("T")


class Worker:
    """Claims executions of the given task names and runs their handlers."""

    def __init__(
        self,
        runtime: Runtime,
        task_names: Iterable[str],
        settings: WorkerSettings | None = None,
        *,
        worker_id: str | None = None,
        on_finished: Callable[[str, ExecutionRecord | None], None] | None = None,
        schedules: bool = True,
    ) -> None:
        self.runtime = runtime
        #: Whether this worker stores its handlers' declared schedules and fires due ones.
        self.fires_schedules = schedules
        self.task_names = sorted(set(task_names))
        if not self.task_names:
            raise ConfigurationError(
                "the worker has no durable handler to run; import the modules that define them"
            )
        self.settings = settings or WorkerSettings()
        self.store = runtime.store
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._on_finished = on_finished
        self._in_flight: dict[str, tuple[asyncio.Task[Any], Lease]] = {}
        #: Slots promised to starts of this process that insert their execution already
        #: claimed (:meth:`reserve`), until they hand it over (:meth:`adopt`).
        self._reserved = 0
        #: Whether the last claim left ready work behind: a freed slot claims again at once.
        self._backlog = False
        self._wake = asyncio.Event()
        #: Executions claimed ahead of their due time, held here until then.
        self._ahead = ClaimAhead(
            self.store,
            runtime.clock,
            self.settings,
            worker_id=self.worker_id,
            task_names=self.task_names,
            wake=self._wake,
            spawn=self._spawn,
        )
        #: When a claim asks for a takeover first (expired leases, one at a time).
        self._takeovers = Takeovers(
            poll_interval=self.settings.poll_interval, probation=self.settings.heartbeat_every
        )
        self._pruning = PruneLoop(
            self.store, runtime.clock, self.settings, self.worker_id, firings=schedules
        )
        self._instruments = WorkerInstruments(self.settings.concurrency)  # zart.metrics
        self._queues = QueueClaims(self.store, self.worker_id, self.task_names, self.settings)
        self._stopping = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._started = False
        self._stop_task: asyncio.Task[None] | None = None
        self._listener = Listener(
            runtime,
            worker_id=self.worker_id,
            task_names=self.task_names,
            wake=self._wake,
            stopping=self._stopping,
            queues_changed=self.queues_changed,
            poll_interval=self.settings.poll_interval,
            probe_every=self.settings.lease_timeout / 3,
        )
        self.schedules = ScheduleLoop(
            runtime.store,
            runtime.clock,
            channel=runtime.channel,
            timeout_of=_timeout_of,
            on_started=self._wake.set,
            on_cancelled=self.abort,
            compensated=compensated_names,
            worker_id=self.worker_id,
            outage=runtime.outage,
        )

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Register the worker and start its loops (returns at once)."""
        if self._started:
            raise ConfigurationError("this worker was already started")
        self._started = True
        # On the engine, as the control plane: its errors are the application's own engine's.
        async with self.store.transaction() as db:
            await db.run(
                workers_repo.register_worker,
                worker_id=self.worker_id,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                task_names=self.task_names,
                concurrency=self.settings.concurrency,
                now=self.runtime.clock.now(),
            )
            await self._queues.declare(db, **self._at_now())
        if self.fires_schedules:
            await self.schedules.sync(declared_schedules(self.task_names))
        self.runtime.open_connections()
        self._loops = [
            self._supervise("claim", self._claim_loop),
            self._supervise("heartbeat", self._heartbeat_loop),
        ]
        if self.store.backend.notifies:  # otherwise polling is the only way
            self._loops.append(self._supervise("listener", self._listener.run))
        if self.fires_schedules:
            self._loops.append(self._supervise("schedules", self._schedules_loop))
        if self._pruning.needed:
            self._loops.append(self._supervise("prune", lambda: self._pruning.run(self._stopping)))
        self._instruments.started()
        database = self.runtime.engine.url.render_as_string(hide_password=True)
        log(
            "worker_started",
            f"worker {self.worker_id} started on {database}",
            worker_id=self.worker_id,
            database=database,
            tasks=self.task_names,
            concurrency=self.settings.concurrency,
        )

    def _at_now(self) -> dict[str, Any]:
        return {"now": self.runtime.clock.now(), "channel": self.runtime.channel}

    def _supervise(
        self, name: str, loop: Callable[[], Coroutine[Any, Any, None]]
    ) -> asyncio.Task[None]:
        task = asyncio.create_task(loop(), name=f"zart-worker-{name}")
        task.add_done_callback(self._loop_ended)
        return task

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._stopping.is_set():
            return
        error = task.exception()
        log(
            "worker_loop_died",
            f"{task.get_name()} died: {error!r}; stopping the worker",
            level=40,
            worker_id=self.worker_id,
        )
        # Stop everything, now: runs without a heartbeat would be taken over under our feet.
        self._stopping.set()
        self._begin_stop(0.0)

    async def wait_stopped(self) -> None:
        """Wait until the worker is asked to stop (or one of its loops died)."""
        await self._stopping.wait()
        for task in self._loops:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise RuntimeError(f"worker loop {task.get_name()} died") from task.exception()

    async def stop(self, timeout: float | None = None) -> None:
        """Stop claiming, give running executions ``timeout`` seconds (default:
        ``shutdown_timeout``) to finish, then cancel them and release their leases."""
        await asyncio.shield(self._begin_stop(timeout))

    def _begin_stop(self, timeout: float | None) -> asyncio.Task[None]:
        if self._stop_task is None:
            self._stop_task = asyncio.create_task(self._stop(timeout), name="zart-worker-stop")
        return self._stop_task

    async def _stop(self, timeout: float | None) -> None:
        self._stopping.set()
        self._wake.set()
        claim, *side_loops = self._loops
        claim.cancel()
        await asyncio.gather(claim, return_exceptions=True)
        # Runs claimed ahead and not started go back at once, to wait for their due time.
        await self._ahead.stop()
        # The heartbeat keeps renewing leases while running executions finish.
        limit = self.settings.shutdown_timeout if timeout is None else timeout
        running = [task for task, _ in self._in_flight.values()]
        if running:
            await asyncio.wait(running, timeout=limit)
        for task in side_loops:
            task.cancel()
        await asyncio.gather(*side_loops, return_exceptions=True)
        leftovers = list(self._in_flight.items())
        for _, (task, _lease) in leftovers:
            task.cancel()
        await asyncio.gather(*(task for _, (task, _) in leftovers), return_exceptions=True)
        await self._release([lease for _, (_, lease) in leftovers])
        try:
            async with self.store.transaction() as db:
                await db.run(
                    workers_repo.mark_worker_stopped, self.worker_id, now=self.runtime.clock.now()
                )
        except Exception as exc:  # best effort: the row drops out of the live list anyway
            log("worker_stop_unrecorded", f"could not record the stop: {exc}", level=30)
        await self.runtime.close_connections()
        self._instruments.stopped()
        log(
            "worker_stopped",
            f"worker {self.worker_id} stopped",
            worker_id=self.worker_id,
            released=len(leftovers),
        )

    async def _release(self, taken: list[Lease]) -> None:
        for lease in taken:
            # LeaseLost: someone else owns it; a database error: its lease will simply expire.
            with contextlib.suppress(*RELEASE_ERRORS):
                await self.store.run(
                    leases.release_lease,
                    lease,
                    now=self.runtime.clock.now(),
                    channel=self.runtime.channel,  # another worker may resume it at once
                    task_names=self.task_names,
                )

    def wake(self) -> None:
        """Look for ready executions now (called when one is started in this process)."""
        self._wake.set()

    def queues_changed(self) -> None:
        """Re-read the queues' limits before claiming again (one was changed)."""
        self._queues.mark_stale()
        self._wake.set()

    def abort(self, execution_id: str) -> bool:
        """Stop running ``execution_id`` here at once (it was cancelled). True if it ran here."""
        if self._ahead.drop(execution_id):  # never started: nothing to stop
            return True
        entry = self._in_flight.get(execution_id)
        if entry is None:
            return False
        entry[0].cancel()
        return True

    @property
    def listener_pid(self) -> int | None:
        """Server pid of the listening connection while up (PostgreSQL), for operators."""
        return self._listener.pid

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def held(self) -> int:
        """Executions claimed ahead of their due time, waiting here to start."""
        return len(self._ahead.held)

    def runs(self, execution_id: str) -> bool:
        """Whether ``execution_id`` is running on this worker now."""
        return execution_id in self._in_flight

    # -- starts of this process -----------------------------------------------------------

    def reserve(
        self, task_name: str, execution_id: str, queue: str = DEFAULT_QUEUE
    ) -> Lease | None:
        """A lease for an execution this process is about to start, when this worker runs
        ``task_name`` of an unlimited ``queue`` it claims from and has a slot free: the start
        inserts it already claimed (one commit, no claim) and hands it over with
        :meth:`adopt`. ``None``: start it unclaimed."""
        if (
            not self._loops
            or self._stopping.is_set()
            or task_name not in self.task_names
            or not self._queues.claims_here(queue)
            or len(self._in_flight) + self._reserved >= self.settings.concurrency
        ):
            return None
        self._reserved += 1
        expires_at = self.runtime.clock.now() + timedelta(seconds=self.settings.lease_timeout)
        return Lease(execution_id, str(uuid.uuid4()), self.worker_id, expires_at)

    def adopt(self, claimed: ClaimedExecution | None) -> None:
        """Run an execution inserted with a lease from :meth:`reserve`; ``None``: the start
        inserted nothing (an existing id, an error), and the slot is free again."""
        self._reserved -= 1
        if claimed is None:
            if self._backlog:  # the slot it held may be what ready work waits for
                self._wake.set()
            return
        if self._stopping.is_set():  # too late to run it here: let another worker have it
            task = asyncio.create_task(self._release([claimed.lease]), name="zart-hand-back")
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return
        self._spawn(claimed, {})

    # -- claim loop -----------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        while not self._stopping.is_set():
            # Cleared before claiming: a wake-up that arrives during the claim is not lost.
            self._wake.clear()
            free = self.settings.concurrency - len(self._in_flight) - self._reserved
            pause = self.settings.poll_interval
            if free > 0:
                try:
                    await self._queues.refresh(self.settings.poll_interval)
                    now = self.runtime.clock.now()
                    await self.runtime.pause_rules.refresh(
                        self.store, now, max_age=max(self.settings.poll_interval, PAUSE_RULES_AGE)
                    )
                    started = self._ahead.start_ready(free)
                    if started:  # due runs held here go first; then look again
                        continue
                    limit = min(free, CLAIM_CHUNK)
                    taken = await self._claim(limit, now)
                    self.runtime.outage.succeeded("claim")
                    if taken < limit:  # idle: claim what is due soon, sleep till the next
                        if await self._ahead.claim(now, *self._queues.filters):
                            continue  # there may be more
                        pause = self._queues.pause(await self._until_next_due(pause, now), now)
                    elif taken < free:  # a backlog and free slots: the next chunk at once
                        continue
                except Exception as exc:
                    if not is_transient(exc):  # a bug, or a schema that is not Zart's: die
                        raise
                    # The database is away: back off (logged once per outage), then again.
                    pause = self.runtime.outage.failed("claim", exc, action="claim_failed")
            else:  # full: whatever woke us may be ready work waiting for a slot
                self._backlog = True
            # Ready work beyond the free slots waits for a slot (its end sets the wake event).
            await wait_for(self._wake, pause)

    async def _until_next_due(self, longest: float, now: datetime) -> float:
        """Seconds until the next execution becomes claimable after ``now``, at most
        ``longest``."""
        due = await self.store.run(wakeups.next_claimable_at, self.task_names, after=now)
        due = self._ahead.next_wake(due, now)
        if due is None:
            return longest
        return min(longest, max((due - self.runtime.clock.now()).total_seconds(), 0.0))

    async def _claim(self, free: int, now: datetime) -> int:
        """Claim up to ``free`` executions and load their outcomes (the claim also fires the
        woken runs' due timers and completes their due sleeps, for the batch at once), then
        from the limited queues (:mod:`zart.worker.queues`). The claim commits before the
        handlers start; should this task be cancelled meanwhile (the worker stops), or the
        read of the outcomes fail, what it claimed is handed back at once."""
        work = asyncio.ensure_future(self._claim_and_load(free, now))
        claimed, outcomes = await handing_back(
            work, lambda taken: self._release([c.lease for c in taken[0]])
        )
        self._backlog = len(claimed) >= free or self._queues.more
        for item in claimed:
            self._spawn(item, outcomes.get(item.execution.run_id, {}))
        return len(claimed)

    async def _claim_and_load(
        self, free: int, now: datetime
    ) -> tuple[list[ClaimedExecution], dict[str, dict[str, StepRecord]]]:
        takeovers = self._takeovers.wanted(now)
        try:
            claimed, outcomes = await self.store.run(
                claims.claim_and_load,
                worker_id=self.worker_id,
                task_names=self.task_names,
                limit=free,
                now=now,
                lease_timeout=timedelta(seconds=self.settings.lease_timeout),
                takeovers=takeovers,
                limited=self._queues.limited,
                queues=self._queues.subscribed,
            )
        except claims.OutcomesNotLoaded as failed:  # hand back what it took, at once
            for taken in failed.taken:  # as soon as the database answers, if it does not now
                self._hand_back(taken.lease, taken.execution.task_name)
            raise failed.__cause__ or failed from None
        self._takeovers.claimed(takeovers, claimed, now)
        try:  # the limited queues' turn (one transaction each: it commits or takes nothing)
            more, loaded = await self._queues.claim(free - len(claimed), self.runtime.clock.now())
        except BaseException:
            for taken in claimed:
                self._hand_back(taken.lease, taken.execution.task_name)
            raise
        return claimed + more, outcomes | loaded

    def _hand_back(self, lease: Lease, task_name: str) -> None:
        hand_back = self.runtime.hand_back(lease, task_name)
        task = asyncio.create_task(hand_back, name=f"zart-hand-back-{lease.execution_id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _spawn(self, claimed: ClaimedExecution, outcomes: dict[str, StepRecord]) -> None:
        execution_id = claimed.execution.execution_id
        handler = find_handler(claimed.execution.task_name)
        if handler is None:  # pragma: no cover - we only claim task names we registered
            return
        task = asyncio.create_task(
            execute(self.runtime, handler, claimed, outcomes, max_claims=self.settings.max_claims),
            name=f"zart-execution-{execution_id}",
        )
        self._in_flight[execution_id] = (task, claimed.lease)
        self._instruments.run_began(claimed, self.runtime.clock.now())
        task.add_done_callback(lambda done: self._execution_ended(execution_id, done))
        if logger.isEnabledFor(logging.INFO):
            log(
                "execution_claimed",
                "execution claimed",
                execution_id=execution_id,
                task_name=claimed.execution.task_name,
                worker_id=self.worker_id,
                claim_count=claimed.execution.claim_count,
            )

    def _execution_ended(self, execution_id: str, task: asyncio.Task[Any]) -> None:
        entry = self._in_flight.get(execution_id)
        if entry is not None and entry[0] is task:  # not a new run of it claimed since
            del self._in_flight[execution_id]
            self._instruments.run_ended(execution_id)
        record: ExecutionRecord | None = None
        if not task.cancelled():
            if task.exception() is not None:
                log(
                    "execution_crashed",
                    f"execution task crashed: {task.exception()!r}",
                    level=40,
                    execution_id=execution_id,
                )
            else:
                record = task.result()
        # Claim again when ready work (or a takeover's probation) may wait for this slot, and
        # re-plan the next wake-up when the run suspended or let go of the execution.
        cleared = self._takeovers.ended(execution_id)
        if cleared or self._backlog or record is None or not record.is_terminal:
            self._wake.set()
        if self._on_finished is not None:
            self._on_finished(execution_id, record)

    # -- heartbeat loop -------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        never = asyncio.Event()  # nothing hurries a heartbeat; the wait is the interval
        pause = self.settings.heartbeat_every
        while True:  # runs on during a graceful shutdown; stop() cancels it last
            await wait_for(never, pause)
            pause = self.settings.heartbeat_every
            try:
                await self._heartbeat()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                # Sooner than the interval: the leases must be renewed before they expire.
                failed = self.runtime.outage.failed("heartbeat", exc, action="heartbeat_failed")
                pause = min(pause, failed)
            else:
                self.runtime.outage.succeeded("heartbeat")

    async def _heartbeat(self) -> None:
        now = self.runtime.clock.now()
        renewing = [lease for _, lease in self._in_flight.values()]
        # A held execution runs nothing, so its lease is renewed only when it would otherwise
        # expire before the next heartbeat: most are started before that.
        settings = self.settings
        renew_by = now + timedelta(seconds=settings.lease_timeout - settings.heartbeat_every)
        renewing += self._ahead.renewing(renew_by)
        renewed, lost = await self.store.run(
            leases.heartbeat,
            self.worker_id,
            renewing,
            now=now,
            lease_timeout=timedelta(seconds=settings.lease_timeout),
        )
        for lease in renewed:
            entry = self._in_flight.get(lease.execution_id)
            if entry is not None:
                self._in_flight[lease.execution_id] = (entry[0], lease)
            self._ahead.renewed(lease)
        for lease in lost:
            self._ahead.lost(lease)
            entry = self._in_flight.get(lease.execution_id)
            if entry is not None and entry[1].token == lease.token:
                self._instruments.lease_lost(lease.execution_id)
                log(
                    "lease_lost",
                    "lease lost; stopping the execution here",
                    execution_id=lease.execution_id,
                    worker_id=self.worker_id,
                )
                entry[0].cancel()

    # -- schedules loop -------------------------------------------------------------------

    async def _schedules_loop(self) -> None:
        await self.schedules.run(self._stopping, self.settings.poll_interval)


def _timeout_of(task_name: str) -> timedelta | None:
    handler = find_handler(task_name)
    return None if handler is None else handler.timeout
