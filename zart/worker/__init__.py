"""Workers: claim executions, run their handlers, keep their leases alive."""

from zart.worker.worker import Worker, WorkerSettings

__all__ = ["Worker", "WorkerSettings"]
