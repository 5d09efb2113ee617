"""Workers: claim executions, run their handlers, keep their leases alive."""

from zart.worker.worker import Worker, WorkerSettings, freeze_startup_objects

__all__ = ["Worker", "WorkerSettings", "freeze_startup_objects"]
