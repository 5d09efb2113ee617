"""Gauges read from the database at scrape time (``GET /metrics`` on ``zart serve``): how
many executions are unfinished, by task and status, and how many of them are ready for a
worker now (the queue depth).

One statement per scrape, reading unfinished rows only: ``status IN ('scheduled', 'running',
'waiting')`` is a range of the ``(status, created_at)`` index, so the finished history (a
million completed rows, say) is never read and the scrape costs what the live work costs.
Finished executions are counted by the workers' counters (``zart_executions_finished_total``),
not here: a count of them would read the whole history on every scrape.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, select

from zart.models import ExecutionRow, ExecutionStatus, table_of
from zart.repositories.executors import Backend, Operation, reads
from zart.repositories.statements import Statement, one_of

executions = table_of(ExecutionRow)

#: The statuses the gauges count (the unfinished ones).
LIVE = (ExecutionStatus.SCHEDULED, ExecutionStatus.RUNNING, ExecutionStatus.WAITING)


@dataclass(frozen=True, slots=True)
class LiveCount:
    """Unfinished executions of one task in one status, and how many are claimable now."""

    task_name: str
    status: ExecutionStatus
    count: int
    ready: int


def _live(dialect: str) -> Any:
    now = bindparam("now", type_=executions.c.claimable_at.type)
    ready = and_(
        executions.c.status != ExecutionStatus.RUNNING.value, executions.c.claimable_at <= now
    )
    return (
        select(
            executions.c.task_name,
            executions.c.status,
            func.count().label("count"),
            func.count().filter(ready).label("ready"),
        )
        .where(one_of(executions.c.status, "live", dialect))
        .group_by(executions.c.task_name, executions.c.status)
    )


LIVE_COUNTS = Statement("count_live_executions", _live)


@reads
def count_live_executions(backend: Backend, *, now: datetime) -> Operation[list[LiveCount]]:
    """The unfinished executions by task and status, each with how many are ready at ``now``
    (due and unclaimed: the queue depth). One statement over unfinished rows only."""
    found = yield LIVE_COUNTS, {"live": [s.value for s in LIVE], "now": now}
    return [
        LiveCount(r["task_name"], ExecutionStatus(r["status"]), int(r["count"]), int(r["ready"]))
        for r in found
    ]
