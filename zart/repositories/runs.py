"""Runs: the append-only history of passes over an execution."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update

from zart.models import ExecutionStatus, RunRow, table_of
from zart.repositories import rows
from zart.repositories.executors import Backend, Operation, reads
from zart.repositories.records import RunRecord
from zart.repositories.statements import Statement

runs = table_of(RunRow)

LIST = Statement(
    "list_runs",
    lambda _d: (
        select(runs)
        .where(runs.c.execution_id == bindparam("execution_id"))
        .order_by(runs.c.run_index)
    ),
)


@reads
def list_runs(backend: Backend, execution_id: str) -> Operation[list[RunRecord]]:
    """Every run of an execution, first run first."""
    return [rows.run(r) for r in (yield LIST, {"execution_id": execution_id})]


END = Statement(
    "end_run",
    lambda _d: (
        update(runs)
        .where(runs.c.run_id == bindparam("run_id"))
        .values(
            status=bindparam("status", type_=runs.c.status.type),
            result=bindparam("result", type_=runs.c.result.type),
            error=bindparam("error", type_=runs.c.error.type),
            completed_at=bindparam("now", type_=runs.c.completed_at.type),
        )
    ),
)


def end_run(
    backend: Backend,
    run_id: str,
    status: ExecutionStatus,
    *,
    result: Any = None,
    error: Any = None,
    now: datetime,
) -> Operation[None]:
    """Record how a run ended (its execution's final status, result and error)."""
    yield (
        END,
        {"run_id": run_id, "status": status.value, "result": result, "error": error, "now": now},
    )
