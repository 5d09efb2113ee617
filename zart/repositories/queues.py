"""Queues: store the declared ones, read, change, pause and resume them, and their figures.

A queue row holds its limits (:mod:`zart.models.queues`); the claim of a limited queue
(:mod:`.queue_claims`) locks it. Every change here wakes the workers (NOTIFY
:data:`QUEUES_CHANGED` at commit, PostgreSQL) so they re-read which queues are limited at
once; without it they do within one poll interval.

Declaring is an upsert that overwrites the limits only when the code's declaration changed
(``declared IS DISTINCT FROM`` the new one): an operator's change at run time stays until
then, and workers that start with the same code change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, or_, select, true, update

from zart.errors import QueueNotFound
from zart.models import ExecutionRow, ExecutionStatus, QueueRow, QueueStartRow, table_of
from zart.models.queues import LIMITS, Queue, QueueLimits
from zart.repositories import wakeups
from zart.repositories.executors import Backend, Operation, reads
from zart.repositories.statements import Statement, one_of, upsert

queues = table_of(QueueRow)
starts = table_of(QueueStartRow)
executions = table_of(ExecutionRow)

#: Limits added after queues were first released (see :func:`declare_queues`).
_ADDED = frozenset({"partition_rate_limit"})

#: The NOTIFY payload that tells workers the queues changed.
QUEUES_CHANGED = "zart:queues"

#: Statuses counted as a queue's depth (``queued``) and those of its running count.
_QUEUED = [ExecutionStatus.SCHEDULED.value, ExecutionStatus.WAITING.value]


@dataclass(frozen=True, slots=True)
class QueueRecord:
    """A stored queue and its figures (when read by :func:`list_queues`)."""

    name: str
    limits: QueueLimits
    paused: bool
    updated_at: datetime
    #: Executions scheduled or waiting in it.
    queued: int = 0
    #: Executions of it running now (a live lease).
    running: int = 0
    #: Starts within the rate limit's current window (0 without a rate limit).
    recent_starts: int = 0

    @property
    def limited(self) -> bool:
        """Whether its executions go through the limited claim (a limit, or paused)."""
        return self.paused or not self.limits.unlimited


def record_of(m: Mapping[str, Any], **figures: int) -> QueueRecord:
    return QueueRecord(
        name=m["name"],
        limits=QueueLimits.stored(m),
        paused=bool(m["paused"]),
        updated_at=m["updated_at"],
        **figures,
    )


def _limit_values() -> dict[str, Any]:
    return {name: bindparam(name, type_=queues.c[name].type) for name in LIMITS}


def _declare(dialect: str) -> Any:
    now = bindparam("now", type_=queues.c.updated_at.type)
    insert = upsert(queues, dialect).values(
        name=bindparam("name"),
        **_limit_values(),
        declared=bindparam("declared", type_=queues.c.declared.type),
        created_at=now,
        updated_at=now,
    )
    new = insert.excluded
    return insert.on_conflict_do_update(
        index_elements=["name"],
        set_={
            **{name: new[name] for name in LIMITS},
            "declared": new.declared,
            "updated_at": new.updated_at,
        },
        where=queues.c.declared.is_distinct_from(new.declared),
    ).returning(queues.c.name)


def _set(dialect: str) -> Any:
    now = bindparam("now", type_=queues.c.updated_at.type)
    insert = upsert(queues, dialect).values(
        name=bindparam("name"), **_limit_values(), created_at=now, updated_at=now
    )
    new = insert.excluded
    return insert.on_conflict_do_update(
        index_elements=["name"],
        set_={**{name: new[name] for name in LIMITS}, "updated_at": new.updated_at},
    ).returning(*queues.c)


DECLARE = Statement("declare_queue", _declare)
SET = Statement("set_queue", _set)
SET_PAUSED = Statement(
    "set_queue_paused",
    lambda _d: (
        update(queues)
        .where(queues.c.name == bindparam("name"))
        .values(
            paused=bindparam("paused"), updated_at=bindparam("now", type_=queues.c.updated_at.type)
        )
        .returning(*queues.c)
    ),
)
LIST = Statement("list_queues", lambda _d: select(queues).order_by(queues.c.name))
LIMITED = Statement(
    "limited_queues",
    lambda _d: select(queues.c.name).where(
        or_(queues.c.paused == true(), *(queues.c[name].is_not(None) for name in LIMITS))
    ),
)
DEPTHS = Statement(
    "queue_depths",
    lambda d: (
        select(
            executions.c.queue_name,
            func.count().filter(one_of(executions.c.status, "queued", d)).label("queued"),
            func.count()
            .filter(
                executions.c.status == ExecutionStatus.RUNNING.value,
                executions.c.claimable_at > bindparam("now", type_=executions.c.claimable_at.type),
            )
            .label("running"),
        )
        .where(executions.c.claimable_at.is_not(None) | one_of(executions.c.status, "queued", d))
        .group_by(executions.c.queue_name)
    ),
)
RECENT_STARTS = Statement(
    "queue_recent_starts",
    lambda _d: select(func.count().label("count")).where(
        starts.c.queue_name == bindparam("name"),
        starts.c.started_at > bindparam("since", type_=starts.c.started_at.type),
    ),
)


def declare_queues(
    backend: Backend, declared: Iterable[Queue], *, now: datetime, channel: str
) -> Operation[int]:
    """Store the queues declared in code (name and limits): a new one, or one whose
    declaration changed, gets the declared limits; an operator's later change otherwise
    stays. How many rows changed (they wake the workers)."""
    changed = 0
    for queue in declared:
        stored = queue.limits.declaration()
        # A limit added since revision 0013 is left out of the declaration while unset, so
        # a declaration an older Zart stored compares equal and an operator's change stays.
        compared = {k: v for k, v in stored.items() if v is not None or k not in _ADDED}
        found = yield DECLARE, {"name": queue.name, "now": now, "declared": compared, **stored}
        changed += len(found)
    if changed:
        yield from wakeups.notify(backend, channel, QUEUES_CHANGED)
    return changed


def set_queue(
    backend: Backend, name: str, limits: QueueLimits, *, now: datetime, channel: str
) -> Operation[QueueRecord]:
    """Set the limits of queue ``name`` (creating it), as an operator does at run time."""
    found = yield SET, {"name": name, "now": now, **limits.declaration()}
    yield from wakeups.notify(backend, channel, QUEUES_CHANGED)
    return record_of(found[0])


def set_paused(
    backend: Backend, name: str, paused: bool, *, now: datetime, channel: str
) -> Operation[QueueRecord]:
    """Pause (no claim takes its executions; those running go on) or resume queue ``name``."""
    found = yield SET_PAUSED, {"name": name, "paused": paused, "now": now}
    if not found:
        raise QueueNotFound(name)
    yield from wakeups.notify(backend, channel, QUEUES_CHANGED)
    return record_of(found[0])


@reads
def get_queue(backend: Backend, name: str, *, now: datetime) -> Operation[QueueRecord]:
    """Queue ``name`` with its figures, or :class:`~zart.errors.QueueNotFound`."""
    for queue in (yield from list_queues(backend, now=now)):
        if queue.name == name:
            return queue
    raise QueueNotFound(name)


@reads
def list_queues(backend: Backend, *, now: datetime) -> Operation[list[QueueRecord]]:
    """Every stored queue with its depth, running count and starts in its rate window; a
    queue that executions name but no row stores is listed too (unlimited)."""
    stored = yield LIST, {}
    depths = yield DEPTHS, {"now": now, "queued": _QUEUED}
    by_name = {r["queue_name"]: (int(r["queued"]), int(r["running"])) for r in depths}
    found: list[QueueRecord] = []
    for row in stored:
        queued, running = by_name.pop(row["name"], (0, 0))
        queue = record_of(row, queued=queued, running=running)
        rate = queue.limits.rate_limit
        if rate is not None:
            counted = yield RECENT_STARTS, {"name": queue.name, "since": now - rate.period}
            queue = record_of(
                row, queued=queued, running=running, recent_starts=counted[0]["count"]
            )
        found.append(queue)
    for name, (queued, running) in by_name.items():
        found.append(QueueRecord(name, QueueLimits(), False, now, queued, running))
    return sorted(found, key=lambda q: q.name)


@reads
def limited_queues(backend: Backend) -> Operation[list[str]]:
    """The names of the queues whose executions only the limited claim takes."""
    found = yield LIMITED, {}
    return sorted(r["name"] for r in found)
