"""Structured logging. Every record carries a stable ``action`` (``step_succeeded``,
``lease_lost``, ...): messages may change, actions are an API that tests and dashboards use.

:func:`configure` is what ``zart worker`` and ``zart serve`` call: one line per record on
stderr, as text or as one JSON object, unless the application configured logging itself.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from typing import Any, Literal

logger = logging.getLogger("zart")

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

#: The attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


#: The fields every action line carries, ``None`` where they do not apply (a worker's own
#: lines have no execution, an execution's own no step).
SUBJECT_FIELDS = ("execution_id", "task_name", "step_name")
_UNBOUND: dict[str, Any] = dict.fromkeys(SUBJECT_FIELDS)

#: What the run in progress in this task is (:func:`bound`): its lines carry it.
_bound: ContextVar[dict[str, Any]] = ContextVar("zart_log_fields", default=_UNBOUND)


class bound:  # used as a function: ``with bound(execution_id=...):``
    """Every action line logged inside (in this task and the tasks it starts) carries
    ``fields`` unless it names them itself: a run binds its ``execution_id`` and
    ``task_name``. (A class rather than a generator: every run enters one.)"""

    __slots__ = ("_fields", "_token")

    def __init__(self, **fields: Any) -> None:
        self._fields = fields

    def __enter__(self) -> None:
        self._token = _bound.set({**_bound.get(), **self._fields})

    def __exit__(self, *exc_info: object) -> None:
        _bound.reset(self._token)


def log(action: str, message: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``message`` with ``action``, the subject fields (``execution_id``, ``task_name``,
    ``step_name``: given, else bound by the run in progress, else ``None``) and ``fields`` as
    record attributes (``extra``)."""
    if logger.isEnabledFor(level):
        logger.log(level, message, extra={"action": action, **_bound.get(), **fields})


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
        # A subject field that does not apply (None) is left out of the text line; the JSON
        # line carries it as null.
        shown = [f"{key}={value}" for key, value in fields.items() if value is not None]
        if shown:
            text += " " + " ".join(shown)
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
