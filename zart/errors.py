"""Zart's exception hierarchy. Every error Zart raises derives from :class:`ZartError`.

- Configuration and input: :class:`ConfigurationError`, :class:`InvalidPayload`,
  :class:`SerializationError`, :class:`UnknownTask`.
- Control plane: :class:`ExecutionNotFound`, :class:`ExecutionAlreadyExists`.
- Storage: :class:`LeaseLost` (a fenced write refused because another worker took over),
  :class:`MigrationError`.
"""

from __future__ import annotations


class ZartError(Exception):
    """Base class of every error raised by Zart."""


class ConfigurationError(ZartError):
    """Zart was set up wrongly: a bad database URL, option or registration."""


class MigrationError(ZartError):
    """The database schema could not be migrated or is not at the expected revision."""


class InvalidPayload(ZartError, ValueError):
    """A payload, result or event failed validation or cannot be stored."""


class SerializationError(InvalidPayload):
    """A value cannot be turned into stored JSON (or back) without losing its meaning."""


class UnknownTask(ZartError, LookupError):
    """No durable handler is registered under this task name."""

    def __init__(self, task_name: str) -> None:
        super().__init__(
            f"unknown task {task_name!r}: no durable handler is registered under that name"
        )
        self.task_name = task_name


class ExecutionNotFound(ZartError, LookupError):
    """No execution has this id."""

    def __init__(self, execution_id: str) -> None:
        super().__init__(f"no execution with id {execution_id!r}")
        self.execution_id = execution_id


class ExecutionAlreadyExists(ZartError):
    """An execution with this id exists with a different task or payload."""

    def __init__(self, execution_id: str, status: str, reason: str) -> None:
        super().__init__(f"execution {execution_id!r} already exists ({status}): {reason}")
        self.execution_id = execution_id
        self.status = status


class LeaseLost(ZartError):
    """A worker's write was refused: its lease on the execution expired and was taken over."""

    def __init__(self, execution_id: str) -> None:
        super().__init__(
            f"lease on execution {execution_id!r} was lost; another worker owns it now"
        )
        self.execution_id = execution_id


class EventNotAccepted(ZartError):
    """The execution is finished or cancelled and takes no more events."""

    def __init__(self, execution_id: str, status: str) -> None:
        super().__init__(f"execution {execution_id!r} is {status} and accepts no events")
        self.execution_id = execution_id
        self.status = status


class EventAlreadyDelivered(ZartError):
    """An event with this name was already delivered to this execution."""

    def __init__(self, execution_id: str, name: str) -> None:
        super().__init__(f"event {name!r} was already delivered to execution {execution_id!r}")
        self.execution_id = execution_id
        self.name = name
