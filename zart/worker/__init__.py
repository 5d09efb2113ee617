"""Workers: claim executions, run their handlers, keep their leases alive."""

from zart.worker.settings import WorkerSettings, freeze_startup_objects
from zart.worker.worker import Worker

__all__ = ["Worker", "WorkerSettings", "freeze_startup_objects"]
