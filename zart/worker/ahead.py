"""Claiming ahead: waiting executions whose timer is due within ``claim_ahead`` seconds are
claimed before they are due, held here with their outcomes, and started at their due time
(docs/architecture.md §6, "Claiming ahead"). A crowd of sleepers due at the same instant is
then claimed in the seconds before it, rather than all at once when it comes. Only where the
backend's claims skip locked rows (:attr:`~zart.repositories.executors.Backend.skips_locked`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError

from zart.clock import Clock
from zart.errors import LeaseLost
from zart.logs import log
from zart.repositories import claims
from zart.repositories import held as held_repo
from zart.repositories.records import ClaimedExecution, Lease, StepRecord
from zart.repositories.store import Store
from zart.worker.settings import WorkerSettings

T = TypeVar("T")

#: At most this many executions per claim statement (the claim's chunk, also ahead).
CLAIM_CHUNK = 250

#: At most this many held executions whose leases one read checks once they are due (the
#: reads of a crowd run at once).
WAKE_CHUNK = 1000

#: Errors a best-effort hand-back swallows: someone else owns the lease already, or the
#: database did not take it (for any reason: the lease then simply expires).
RELEASE_ERRORS: tuple[type[BaseException], ...] = (LeaseLost, SQLAlchemyError, OSError)


@dataclass(slots=True, eq=False)
class _Held:
    """An execution claimed ahead of its due time, waiting in memory to be started then."""

    claimed: ClaimedExecution
    outcomes: dict[str, StepRecord]
    due_at: datetime
    lease: Lease  # the claim's, renewed by the heartbeat while it is held


async def handing_back(work: asyncio.Future[T], hand_back: Callable[[T], Awaitable[None]]) -> T:
    """The result of a claim ``work``. Should the caller be cancelled meanwhile (the worker
    stops), the claim goes on and may commit: what it took is handed back, so nothing waits
    for its lease to expire."""
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await hand_back(await work)
        raise


class ClaimAhead:
    """The executions one worker claimed ahead of their due time, held until then."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: WorkerSettings,
        *,
        worker_id: str,
        task_names: list[str],
        wake: asyncio.Event,
        spawn: Callable[[ClaimedExecution, dict[str, StepRecord]], None],
    ) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings
        self._worker_id = worker_id
        self._task_names = task_names
        self._wake = wake
        self._spawn = spawn
        #: Held executions by id, and a heap of (due time, tie-breaker, entry) to start them
        #: in due order. An entry no longer in ``held`` (aborted, lease lost) is skipped when
        #: it comes up.
        self.held: dict[str, _Held] = {}
        self._due: list[tuple[datetime, int, _Held]] = []
        self._order = itertools.count()
        #: Held executions that are due and woken, in due order, waiting for a slot.
        self._ready: collections.deque[_Held] = collections.deque()
        self._waker: asyncio.Task[None] | None = None

    @property
    def waking(self) -> bool:
        """Whether due entries are being woken (the waker sets the wake event per chunk)."""
        return self._waker is not None

    def window(self) -> float:
        """Seconds ahead of a timer this worker claims its execution now; 0: it doesn't
        (turned off, a backend whose claims do not skip locked rows, or as many held as
        allowed)."""
        if (
            not self._store.backend.skips_locked
            or len(self.held) >= self._settings.claim_ahead_limit
        ):
            return 0.0
        return self._settings.claim_ahead

    async def claim(
        self, now: datetime, limited: Sequence[str] = (), queues: Sequence[str] | None = None
    ) -> bool:
        """Claim waiting executions whose timer is due within ``claim_ahead`` seconds, load
        their outcomes, and hold them here until they are due (:meth:`_wake_due`,
        :meth:`_start_ready`). A crowd of sleepers due at the same instant is then claimed in
        the seconds before it, rather than all at once when it comes. True when the batch was
        full: there may be more. Never from the ``limited`` queues (a held execution would
        hold a slot); with ``queues``, only from those."""
        ahead = self.window()
        if not ahead:
            return False
        limit = min(self._settings.claim_ahead_limit - len(self.held), CLAIM_CHUNK)
        horizon = now + timedelta(seconds=ahead)
        lease_timeout = timedelta(seconds=self._settings.lease_timeout)

        async def claim() -> list[tuple[ClaimedExecution, datetime, dict[str, StepRecord]]]:
            try:
                got, outcomes = await self._store.run(
                    held_repo.claim_ahead,
                    worker_id=self._worker_id,
                    task_names=self._task_names,
                    limit=limit,
                    now=now,
                    horizon=horizon,
                    lease_timeout=lease_timeout,
                    limited=limited,
                    queues=queues,
                )
            except claims.OutcomesNotLoaded as failed:  # hand back what it took, at once
                await self.release([_Held(c, {}, due, c.lease) for c, due in failed.taken])
                raise failed.__cause__ or failed from None
            return [(c, due, outcomes.get(c.execution.run_id, {})) for c, due in got]

        got = await handing_back(
            asyncio.ensure_future(claim()),
            lambda taken: self.release([_Held(c, o, due, c.lease) for c, due, o in taken]),
        )
        for claimed, due_at, outcomes in got:
            entry = _Held(claimed, outcomes, due_at, claimed.lease)
            self.held[claimed.execution.execution_id] = entry
            heapq.heappush(self._due, (due_at, next(self._order), entry))
        if got:
            log(
                "executions_claimed_ahead",
                f"claimed {len(got)} waiting executions ahead of their due time",
                level=logging.DEBUG,
                worker_id=self._worker_id,
                held=len(self.held),
            )
        return len(got) >= limit

    def next_wake(self, due: datetime | None, now: datetime) -> datetime | None:
        """When the idle claim loop should look again, given ``due``, the next time an
        execution becomes claimable after ``now``: a window earlier (to claim it ahead), or
        when one held here is due, whichever comes first; ``None``: nothing is due."""
        ahead = timedelta(seconds=self.window())
        if due is not None and ahead and due > now + ahead:
            due -= ahead  # claimed ahead then; what is due sooner cannot be (an event wait)
        held = self.next_due()
        if held is not None and held <= now and self.waking:
            held = None  # being woken: the waker sets the wake event as each chunk is ready
        if held is not None and (due is None or held < due):
            due = held
        return due

    def next_due(self) -> datetime | None:
        """When the first execution held here is due (stale heap entries dropped)."""
        while self._due:
            due_at, _, entry = self._due[0]
            if self.held.get(entry.claimed.execution.execution_id) is entry:
                return due_at
            heapq.heappop(self._due)
        return None

    def start_ready(self, free: int) -> int:
        """Start up to ``free`` held executions that are due and woken (:meth:`_wake_due`),
        in due order; start the waking of the next ones when some are due. Returns how many
        were taken off the queue (one no longer held is skipped)."""
        taken = 0
        while taken < free and self._ready:
            entry = self._ready.popleft()
            taken += 1
            execution_id = entry.claimed.execution.execution_id
            if self.held.get(execution_id) is entry:
                del self.held[execution_id]
                claimed = entry.claimed
                if claimed.lease is not entry.lease:  # renewed while it was held
                    claimed = replace(claimed, lease=entry.lease)
                self._spawn(claimed, entry.outcomes)
        due = self.next_due()
        if due is not None and due <= self._clock.now() and self._waker is None:
            self._waker = asyncio.create_task(self._wake_due(), name="zart-worker-waker")
            self._waker.add_done_callback(self._waker_ended)
        return taken

    def _waker_ended(self, task: asyncio.Task[None]) -> None:
        self._waker = None
        if not task.cancelled() and task.exception() is not None:
            log("wake_failed", f"waking held runs failed: {task.exception()!r}", level=40)
        self._wake.set()  # more may have come due meanwhile

    async def _wake_due(self) -> None:
        """While held executions are due: one read per chunk of them checks that their leases
        still hold (the chunks read at once, over the store's connections), and then all of
        them join the queue the claim loop starts them from as slots free up (their due timers
        fired and their due sleeps completed when they were claimed ahead). All at once: a
        crowd due at one instant is then started in one go, and each run's first pass (up to
        its first checkpoint) comes before the rest of anyone's, instead of the crowd's
        second half waiting behind the first half's checkpoints and finishes. Apart from the
        claim loop. One whose lease was lost meanwhile (cancelled, taken over) is dropped."""
        while True:
            now = self._clock.now()
            batch: list[_Held] = []
            while True:
                due_at = self.next_due()
                if due_at is None or due_at > now:
                    break
                batch.append(heapq.heappop(self._due)[2])
            if not batch:
                return
            chunks = [
                batch[start : start + WAKE_CHUNK] for start in range(0, len(batch), WAKE_CHUNK)
            ]
            found = await asyncio.gather(*(self._still_held(chunk) for chunk in chunks))
            for chunk, held in zip(chunks, found, strict=True):
                for entry in chunk:
                    execution_id = entry.claimed.execution.execution_id
                    if self.held.get(execution_id) is not entry:
                        continue  # aborted meanwhile
                    if held is not None and execution_id not in held:
                        del self.held[execution_id]  # its lease is gone: cancelled or taken over
                        continue
                    self._ready.append(entry)
            self._wake.set()

    async def _still_held(self, chunk: list[_Held]) -> set[str] | None:
        """Which of ``chunk`` still hold their leases; ``None`` when the read failed (then
        they are started all the same: their first checkpoint is fenced)."""
        try:
            return await self._store.run(held_repo.still_held, [h.lease for h in chunk])
        except Exception as exc:
            log("wake_failed", f"checking held leases failed: {exc}", level=30)
            return None

    async def release(self, held: list[_Held]) -> None:
        """Give executions claimed ahead back as they were: waiting until their due time."""
        try:
            for start in range(0, len(held), CLAIM_CHUNK):
                await self._store.run(
                    held_repo.release_held,
                    [(h.lease, h.due_at) for h in held[start : start + CLAIM_CHUNK]],
                    now=self._clock.now(),
                )
        except RELEASE_ERRORS:
            pass  # their leases will simply expire

    async def stop(self) -> None:
        """The worker stops: what is held goes back at once, to wait for its due time."""
        if self._waker is not None:
            self._waker.cancel()
            await asyncio.gather(self._waker, return_exceptions=True)
        held = list(self.held.values())
        self.held.clear()
        self._due.clear()
        self._ready.clear()
        await self.release(held)

    def renewing(self, renew_by: datetime) -> list[Lease]:
        """The held leases that would expire by ``renew_by`` (a held execution runs nothing,
        so its lease is renewed only then: most are started before)."""
        return [h.lease for h in self.held.values() if h.lease.expires_at <= renew_by]

    def renewed(self, lease: Lease) -> None:
        held = self.held.get(lease.execution_id)
        if held is not None and held.lease.token == lease.token:
            held.lease = lease

    def lost(self, lease: Lease) -> None:
        held = self.held.get(lease.execution_id)
        if held is not None and held.lease.token == lease.token:
            del self.held[lease.execution_id]  # cancelled or taken over: not ours to start

    def drop(self, execution_id: str) -> bool:
        """Forget a held execution (it was cancelled); True if it was held."""
        return self.held.pop(execution_id, None) is not None
