"""Workers: who is alive and which task names they can run."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from zart.models import WorkerRow, table_of
from zart.repositories.dialect import upsert
from zart.repositories.records import WorkerRecord

workers = table_of(WorkerRow)


def _record(row: Row[Any]) -> WorkerRecord:
    m = row._mapping
    return WorkerRecord(
        worker_id=m["worker_id"],
        hostname=m["hostname"],
        pid=m["pid"],
        task_names=tuple(m["task_names"]),
        concurrency=m["concurrency"],
        started_at=m["started_at"],
        last_seen_at=m["last_seen_at"],
        stopped_at=m["stopped_at"],
    )


async def register_worker(
    conn: AsyncConnection,
    *,
    worker_id: str,
    hostname: str,
    pid: int,
    task_names: Iterable[str],
    concurrency: int,
    now: datetime,
) -> WorkerRecord:
    statement = upsert(conn, workers)
    values = {
        "worker_id": worker_id,
        "hostname": hostname,
        "pid": pid,
        "task_names": sorted(set(task_names)),
        "concurrency": concurrency,
        "started_at": now,
        "last_seen_at": now,
        "stopped_at": None,
    }
    row = (
        await conn.execute(
            statement.values(**values)
            .on_conflict_do_update(
                index_elements=["worker_id"],
                set_={k: getattr(statement.excluded, k) for k in values if k != "worker_id"},
            )
            .returning(*workers.c)
        )
    ).one()
    return _record(row)


async def record_worker_heartbeat(conn: AsyncConnection, worker_id: str, *, now: datetime) -> None:
    await conn.execute(
        update(workers).where(workers.c.worker_id == worker_id).values(last_seen_at=now)
    )


async def mark_worker_stopped(conn: AsyncConnection, worker_id: str, *, now: datetime) -> None:
    await conn.execute(
        update(workers)
        .where(workers.c.worker_id == worker_id)
        .values(stopped_at=now, last_seen_at=now)
    )


async def live_task_names(conn: AsyncConnection, *, seen_since: datetime) -> set[str]:
    """Task names some worker that heartbeated since ``seen_since`` and has not stopped runs."""
    rows = await conn.execute(
        select(workers.c.task_names).where(
            workers.c.last_seen_at >= seen_since, workers.c.stopped_at.is_(None)
        )
    )
    return {name for (names,) in rows for name in names}
