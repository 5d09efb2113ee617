"""Structured logging. Every record carries a stable ``action`` (``step_succeeded``,
``lease_lost``, ...): messages may change, actions are an API that tests and dashboards use."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("zart")


def log(action: str, message: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``message`` with ``action`` and ``fields`` as record attributes (``extra``)."""
    if logger.isEnabledFor(level):
        logger.log(level, message, extra={"action": action, **fields})
