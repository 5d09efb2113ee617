"""Workers: who is alive and which task names they can run."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update

from zart.models import ExecutionRow, ExecutionStatus, WorkerRow, table_of
from zart.models.base import UTCDateTime
from zart.repositories import rows
from zart.repositories.executors import Backend, Operation, reads
from zart.repositories.records import WorkerRecord
from zart.repositories.statements import Statement, upsert

workers = table_of(WorkerRow)
executions = table_of(ExecutionRow)

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

SEEN_SINCE = Statement(
    "workers_seen_since",
    lambda _d: (
        select(workers)
        .where(
            or_(
                workers.c.last_seen_at >= bindparam("seen_since", type_=UTCDateTime()),
                workers.c.stopped_at >= bindparam("seen_since", type_=UTCDateTime()),
            )
        )
        .order_by(workers.c.started_at.desc(), workers.c.worker_id)
    ),
)
#: Executions each worker holds a lease on (running, or claimed ahead): how busy it is.
HELD = Statement(
    "held_by_worker",
    lambda _d: (
        select(executions.c.lease_owner, func.count().label("held"))
        .where(
            executions.c.status == ExecutionStatus.RUNNING.value,
            executions.c.lease_owner.is_not(None),
        )
        .group_by(executions.c.lease_owner)
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


@reads
def list_workers(
    backend: Backend, *, seen_since: datetime
) -> Operation[list[tuple[WorkerRecord, int]]]:
    """The workers seen (or stopped) since ``seen_since``, newest first, each with how many
    running executions it holds a lease on."""
    found = yield SEEN_SINCE, {"seen_since": seen_since}
    held = {row["lease_owner"]: int(row["held"]) for row in (yield HELD, {})}
    return [(rows.worker(row), held.get(row["worker_id"], 0)) for row in found]
