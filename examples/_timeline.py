"""Print an execution and its step timeline, read back from Zart's tables.

Shared by ``demo.py`` and ``crash_recovery.py``; not an example on its own. It prints what
``zart show EXECUTION_ID`` prints.
"""

from __future__ import annotations

import zart
from zart.cli.timeline import execution_lines


async def print_execution(scheduler: zart.DurableScheduler, execution_id: str) -> None:
    """The execution's status and result (or error), then its steps in the order they ran,
    each with its attempts."""
    detail = await scheduler.execution_detail(execution_id)
    for line in execution_lines(detail):
        print(line)
