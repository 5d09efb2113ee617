"""Workers: who is alive and which task names they can run."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update

from zart.models import WorkerRow, table_of
from zart.repositories import rows
from zart.repositories.executors import Backend, Operation, reads
from zart.repositories.records import WorkerRecord
from zart.repositories.statements import Statement, upsert

workers = table_of(WorkerRow)

_COLUMNS = ("hostname", "pid", "task_names", "concurrency", "started_at", "last_seen_at")


def _register(dialect: str) -> Any:
    insert = upsert(workers, dialect)
    statement = insert.values(
        worker_id=bindparam("worker_id"),
        stopped_at=None,
        **{c: bindparam(c, type_=workers.c[c].type) for c in _COLUMNS},
    )
    return statement.on_conflict_do_update(
        index_elements=["worker_id"],
        set_={c: getattr(statement.excluded, c) for c in (*_COLUMNS, "stopped_at")},
    ).returning(*workers.c)


REGISTER = Statement("register_worker", _register)
SEEN = Statement(
    "worker_seen",
    lambda _d: (
        update(workers)
        .where(workers.c.worker_id == bindparam("worker_id"))
        .values(last_seen_at=bindparam("now", type_=workers.c.last_seen_at.type))
    ),
)
STOPPED = Statement(
    "worker_stopped",
    lambda _d: (
        update(workers)
        .where(workers.c.worker_id == bindparam("worker_id"))
        .values(
            stopped_at=bindparam("now", type_=workers.c.stopped_at.type),
            last_seen_at=bindparam("now", type_=workers.c.last_seen_at.type),
        )
    ),
)
LIVE_TASK_NAMES = Statement(
    "live_task_names",
    lambda _d: select(workers.c.task_names).where(
        workers.c.last_seen_at >= bindparam("seen_since", type_=workers.c.last_seen_at.type),
        workers.c.stopped_at.is_(None),
    ),
)


def register_worker(
    backend: Backend,
    *,
    worker_id: str,
    hostname: str,
    pid: int,
    task_names: Iterable[str],
    concurrency: int,
    now: datetime,
) -> Operation[WorkerRecord]:
    found = yield (
        REGISTER,
        {
            "worker_id": worker_id,
            "hostname": hostname,
            "pid": pid,
            "task_names": sorted(set(task_names)),
            "concurrency": concurrency,
            "started_at": now,
            "last_seen_at": now,
        },
    )
    return rows.worker(found[0])


def record_worker_heartbeat(backend: Backend, worker_id: str, *, now: datetime) -> Operation[None]:
    yield SEEN, {"worker_id": worker_id, "now": now}


def mark_worker_stopped(backend: Backend, worker_id: str, *, now: datetime) -> Operation[None]:
    yield STOPPED, {"worker_id": worker_id, "now": now}


@reads
def live_task_names(backend: Backend, *, seen_since: datetime) -> Operation[set[str]]:
    """Task names some worker that heartbeated since ``seen_since`` and has not stopped runs."""
    found = yield LIVE_TASK_NAMES, {"seen_since": seen_since}
    return {name for row in found for name in row["task_names"]}
