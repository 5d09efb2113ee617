"""A durable handler for the ``zart schedules`` CLI tests (imported with ``--import``)."""

from __future__ import annotations

import zart


@zart.durable("cli-scheduled-report")
async def scheduled_report(data: dict[str, str] | None = None) -> str:
    return "reported"
