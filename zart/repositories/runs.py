"""Runs: the append-only history of passes over an execution."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from zart.models import ExecutionStatus, RunRow, RunTrigger, table_of
from zart.repositories.records import RunRecord

runs = table_of(RunRow)


def _record(row: Row[Any]) -> RunRecord:
    m = row._mapping
    return RunRecord(
        run_id=m["run_id"],
        execution_id=m["execution_id"],
        run_index=m["run_index"],
        payload=m["payload"],
        status=ExecutionStatus(m["status"]),
        result=m["result"],
        error=m["error"],
        trigger=RunTrigger(m["trigger"]),
        triggered_by=m["triggered_by"],
        started_at=m["started_at"],
        completed_at=m["completed_at"],
    )


async def list_runs(conn: AsyncConnection, execution_id: str) -> list[RunRecord]:
    """Every run of an execution, first run first."""
    rows = await conn.execute(
        select(runs).where(runs.c.execution_id == execution_id).order_by(runs.c.run_index)
    )
    return [_record(r) for r in rows]
