"""Workers: claim executions, run their handlers, keep their leases alive."""

from zart.worker.settings import (
    WorkerSettings,
    collect_less_often,
    event_loop_factory,
    freeze_startup_objects,
)
from zart.worker.worker import Worker

__all__ = [
    "Worker",
    "WorkerSettings",
    "collect_less_often",
    "event_loop_factory",
    "freeze_startup_objects",
]
