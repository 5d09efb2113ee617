"""The worker's listener loop (PostgreSQL): one connection LISTENs on the runtime's channel and
wakes the claim loop at once when an execution of one of the worker's tasks becomes ready, the
pause rules change, or a queue's limits change. A lost connection is reconnected with the
outage's back-off, and the claim loop looks once for what it may have missed meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection

from zart.logs import log
from zart.outages import is_transient
from zart.repositories import queues as queues_repo
from zart.repositories import wakeups
from zart.runtime.execution import Runtime

#: Seconds the listener's liveness probe may take before its connection counts as lost.
PROBE_TIMEOUT = 5.0


async def wait_for(event: asyncio.Event, seconds: float) -> None:
    """Wait until ``event`` is set, at most ``seconds``. Not :func:`asyncio.wait_for`: on
    Python 3.11 it swallows a cancel that lands as what it waits for is done (gh-86296)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


class Listener:
    """Wakes ``wake`` for notifications on the runtime's channel until ``stopping`` is set."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        worker_id: str,
        task_names: Collection[str],
        wake: asyncio.Event,
        stopping: asyncio.Event,
        queues_changed: Callable[[], None],
        poll_interval: float,
        probe_every: float,
    ) -> None:
        self.runtime = runtime
        self.worker_id = worker_id
        self.task_names = frozenset(task_names)
        self.wake = wake
        self.stopping = stopping
        self.queues_changed = queues_changed
        self.poll_interval = poll_interval
        self.probe_every = probe_every
        #: Server pid of the listening connection while up, for operators and tests.
        self.pid: int | None = None

    async def run(self) -> None:
        while True:
            pause = self.poll_interval
            try:
                await self._listen()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                # Reconnect with the outage's back-off (logged once per outage).
                pause = self.runtime.outage.failed("listener", exc, action="listener_lost")
            # A wake-up may have been missed while not listening: look now, then reconnect.
            self.wake.set()
            await wait_for(self.stopping, pause)
            if self.stopping.is_set():
                return

    async def _listen(self) -> None:
        def listening(pid: int) -> None:
            self.pid = pid
            self.runtime.outage.succeeded("listener")
            self.wake.set()  # anything that became ready before we listened
            log(
                "listener_started",
                "listening for wake-ups",
                worker_id=self.worker_id,
                channel=self.runtime.channel,
            )

        try:
            await self.runtime.store.listen(
                self.runtime.channel,
                self._on_notification,
                until=self.stopping,
                probe_every=self.probe_every,
                probe_timeout=PROBE_TIMEOUT,
                on_listening=listening,
            )
        finally:
            self.pid = None

    def _on_notification(self, payload: str) -> None:
        if payload == wakeups.PAUSE_RULES_CHANGED:  # reload them before the next claim
            self.runtime.pause_rules.mark_stale()
            self.wake.set()
        elif payload == queues_repo.QUEUES_CHANGED:  # re-read the queues' limits first
            self.queues_changed()
        elif not payload or payload in self.task_names:
            self.wake.set()
