"""Zart: durable execution for Python applications that already live on SQLAlchemy."""

from zart.errors import (
    ConfigurationError,
    EventAlreadyDelivered,
    EventNotAccepted,
    ExecutionAlreadyExists,
    ExecutionNotFound,
    InvalidPayload,
    LeaseLost,
    MigrationError,
    SerializationError,
    UnknownTask,
    ZartError,
)
from zart.models import ExecutionStatus
from zart.repositories.records import ExecutionPage, ExecutionRecord

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "EventAlreadyDelivered",
    "EventNotAccepted",
    "ExecutionAlreadyExists",
    "ExecutionNotFound",
    "ExecutionPage",
    "ExecutionRecord",
    "ExecutionStatus",
    "InvalidPayload",
    "LeaseLost",
    "MigrationError",
    "SerializationError",
    "UnknownTask",
    "ZartError",
    "__version__",
]
