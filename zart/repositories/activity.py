"""Activity: what the dashboard's overview counts. Starts, completions and failures per time
bucket, and per task how many finished, failed and how long they took, over a window. Each is
one aggregate query over the rows of the window (the ``created_at`` and ``completed_at``
indexes bound it), whatever the number of buckets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Float, and_, bindparam, case, cast, func, or_, select, type_coerce
from sqlalchemy.types import NullType

from zart.models import ExecutionRow, ExecutionStatus, table_of
from zart.repositories.executors import Backend, Operation, reads
from zart.repositories.statements import Statement

executions = table_of(ExecutionRow)

#: Buckets of an activity chart (a window cut in this many equal parts).
BUCKETS = 24


@dataclass(frozen=True, slots=True)
class ActivityBucket:
    """Executions started, completed and failed in ``[start, end)``."""

    start: datetime
    end: datetime
    started: int
    completed: int
    failed: int


@dataclass(frozen=True, slots=True)
class TaskActivity:
    """One task over a window: executions finished, of them failed, and the seconds the
    completed ones took from start to finish (mean and longest)."""

    task_name: str
    finished: int
    failed: int
    mean_seconds: float | None
    max_seconds: float | None


def _edge(i: int) -> Any:
    return bindparam(f"t{i}", type_=executions.c.created_at.type)


def _count_in(column: Any, i: int, *conditions: Any) -> Any:
    inside = and_(column >= _edge(i), column < _edge(i + 1), *conditions)
    return func.coalesce(func.sum(case((inside, 1), else_=0)), 0)


def _buckets(_dialect: str) -> Any:
    created, completed, status = (
        executions.c.created_at,
        executions.c.completed_at,
        executions.c.status,
    )
    columns = []
    for i in range(BUCKETS):
        columns.append(_count_in(created, i).label(f"started_{i}"))
        columns.append(
            _count_in(completed, i, status == ExecutionStatus.COMPLETED.value).label(
                f"completed_{i}"
            )
        )
        columns.append(
            _count_in(completed, i, status == ExecutionStatus.FAILED.value).label(f"failed_{i}")
        )
    return select(*columns).where(or_(created >= _edge(0), completed >= _edge(0)))


def _seconds(dialect: str) -> Any:
    """Seconds from start to finish: the one expression that differs per backend."""
    if dialect == "postgresql":
        return func.extract("epoch", executions.c.completed_at - executions.c.created_at)
    # SQLite keeps UTC timestamps as sortable text (zart.models.base.UTCDateTime).
    days = func.julianday(executions.c.completed_at) - func.julianday(executions.c.created_at)
    return days * 86400.0


def _tasks(dialect: str) -> Any:
    seconds = cast(_seconds(dialect), Float)
    completed = executions.c.status == ExecutionStatus.COMPLETED.value
    return (
        select(
            executions.c.task_name,
            func.count().label("finished"),
            func.sum(case((executions.c.status == ExecutionStatus.FAILED.value, 1), else_=0)).label(
                "failed"
            ),
            # Untyped results: the driver's own float (asyncpg's Numeric processor needs a
            # column type this raw statement does not hand it).
            type_coerce(func.avg(case((completed, seconds))), NullType()).label("mean_seconds"),
            type_coerce(func.max(case((completed, seconds))), NullType()).label("max_seconds"),
        )
        .where(
            executions.c.completed_at >= bindparam("since", type_=executions.c.completed_at.type)
        )
        .group_by(executions.c.task_name)
    )


BUCKET_COUNTS = Statement("activity_buckets", _buckets)
TASK_FIGURES = Statement("task_activity", _tasks)


@reads
def activity_buckets(
    backend: Backend, edges: Sequence[datetime]
) -> Operation[list[ActivityBucket]]:
    """Starts, completions and failures between consecutive ``edges`` (``BUCKETS + 1`` of
    them, oldest first)."""
    if len(edges) != BUCKETS + 1:
        raise ValueError(f"activity needs {BUCKETS + 1} bucket edges, not {len(edges)}")
    found = yield BUCKET_COUNTS, {f"t{i}": edge for i, edge in enumerate(edges)}
    row = found[0] if found else {}
    return [
        ActivityBucket(
            start=edges[i],
            end=edges[i + 1],
            started=int(row.get(f"started_{i}") or 0),
            completed=int(row.get(f"completed_{i}") or 0),
            failed=int(row.get(f"failed_{i}") or 0),
        )
        for i in range(BUCKETS)
    ]


@reads
def task_activity(backend: Backend, *, since: datetime) -> Operation[list[TaskActivity]]:
    """Per task, the executions that finished since ``since``, by task name."""
    found = yield TASK_FIGURES, {"since": since}
    figures = [
        TaskActivity(
            task_name=row["task_name"],
            finished=int(row["finished"]),
            failed=int(row["failed"] or 0),
            mean_seconds=None if row["mean_seconds"] is None else float(row["mean_seconds"]),
            max_seconds=None if row["max_seconds"] is None else float(row["max_seconds"]),
        )
        for row in found
    ]
    return sorted(figures, key=lambda f: f.task_name)
