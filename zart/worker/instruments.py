"""What a worker counts (:mod:`zart.metrics`): each run it starts and ends (the slots in
use, the claim and wake-up lag, takeovers), the leases its heartbeat finds lost, its slots.
Kept out of :class:`~zart.worker.Worker`, which only calls it; costs nothing measurable
without ``prometheus-client`` (each call is a dictionary write and a no-op)."""

from __future__ import annotations

from datetime import datetime

from zart import metrics
from zart.repositories.records import ClaimedExecution


class WorkerInstruments:
    """One worker's side of the process's metrics."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        #: Task name of each execution running here, for the lease losses the heartbeat finds.
        self._task_of: dict[str, str] = {}

    def started(self) -> None:
        metrics.slots(total=self.concurrency)

    def stopped(self) -> None:
        metrics.slots(total=-self.concurrency)

    def run_began(self, claimed: ClaimedExecution, now: datetime) -> None:
        """A run of ``claimed`` begins here ``now``: one slot more in use, and how long it
        waited to be claimed (or resumed) when a claim took it."""
        execution = claimed.execution
        if execution.execution_id not in self._task_of:  # not a new run replacing one here
            self._task_of[execution.execution_id] = execution.task_name
            metrics.slots(in_use=1)
        due = claimed.due_at
        lag = None if due is None else (now - due).total_seconds()
        metrics.claimed(execution.task_name, claimed.previous_status.value, lag)

    def run_ended(self, execution_id: str) -> None:
        if self._task_of.pop(execution_id, None) is not None:
            metrics.slots(in_use=-1)

    def lease_lost(self, execution_id: str) -> None:
        task_name = self._task_of.get(execution_id)
        if task_name is not None:
            metrics.lease_lost(task_name)
