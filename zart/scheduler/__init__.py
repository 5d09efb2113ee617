"""The control plane: :class:`DurableScheduler` (start, inspect, wait for, cancel, deliver
events, run workers, admin operations, cron schedules) and :func:`enqueue` (start from
synchronous code inside the caller's transaction)."""

from zart.scheduler.base import LIVE_WORKER_WINDOW
from zart.scheduler.control_plane import DurableScheduler
from zart.scheduler.starts import Target, enqueue
from zart.scheduler.sync import SyncScheduler

__all__ = ["LIVE_WORKER_WINDOW", "DurableScheduler", "SyncScheduler", "Target", "enqueue"]
