"""Structured logging. Every record carries a stable ``action`` (``step_succeeded``,
``lease_lost``, ...): messages may change, actions are an API that tests and dashboards use.

:func:`configure` is what ``zart worker`` and ``zart serve`` call: one line per record on
stderr, as text or as one JSON object, unless the application configured logging itself.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, Literal

logger = logging.getLogger("zart")

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

#: The attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def log(action: str, message: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``message`` with ``action`` and ``fields`` as record attributes (``extra``)."""
    if logger.isEnabledFor(level):
        logger.log(level, message, extra={"action": action, **fields})


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class TextFormatter(logging.Formatter):
    """``2026-01-01 09:00:00,123 INFO zart step_succeeded: message execution_id=... ...``"""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        stable = fields.pop("action", None)
        head = f"{self.formatTime(record)} {record.levelname} {record.name}"
        text = (
            f"{head} {stable}: {record.getMessage()}"
            if stable
            else f"{head}: {record.getMessage()}"
        )
        if fields:
            text += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message`` and the fields."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str, ensure_ascii=False)


def configure(level: str = "INFO", log_format: LogFormat = "text") -> bool:
    """Print log records on stderr at ``level`` and above, one line each, unless the root
    logger already has handlers (the application configured logging: left alone). Returns
    whether it configured anything."""
    root = logging.getLogger()
    if root.handlers:
        return False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    return True
