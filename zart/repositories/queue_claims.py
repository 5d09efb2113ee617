"""The claim of a limited queue: its limits hold across every worker, exactly.

A queue with a limit (or paused) is claimed by this operation, one transaction per queue:

1. lock the queue's row (``SELECT ... FOR UPDATE``, PostgreSQL; SQLite's ``BEGIN
   IMMEDIATE`` already serializes every writer), which also reads its current limits;
2. count what the limits count: its running executions (a live lease), per partition
   where ``partition_concurrency`` is set; its starts within the rate window, per
   partition where ``partition_rate_limit`` is set;
3. pick the due rows it may take: highest priority first, then round-robin over
   partitions (each partition's oldest first), skipping partitions at their cap, and
   fresh starts beyond the rate limits (a partition at its own rate limit is left out of
   the candidates, so it cannot crowd the others out of the claim);
4. lease them (re-checking each is still due and claimable), record the fresh starts of a
   rate-limited queue, and do for woken runs what the ordinary claim does (fire due timers,
   complete due sleeps).

Why exact: every claim of the queue holds its row lock from step 1 to commit, so claims of
one queue run one after the other; in PostgreSQL's READ COMMITTED each later statement of the
transaction reads a snapshot taken after the lock was granted, so the counts include every
claim committed before. Nothing else puts the queue's executions into ``running``: the
ordinary claim, the takeover claim, claiming ahead and in-process starts all leave limited
queues alone (a worker learns which queues are limited within one poll interval, at once
with NOTIFY). What leaves ``running`` (a finish, a suspension, an expired lease) only
lowers the counts, so a count that misses one errs on the safe side. See
``docs/architecture.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, func, select, update

from zart.models import ExecutionRow, ExecutionStatus, QueueRow, QueueStartRow, table_of
from zart.models.queues import MAX_LIMIT, QueueLimits
from zart.repositories import steps as steps_repo
from zart.repositories import timers as timers_repo
from zart.repositories.claims import READY_VALUES, _ClaimParameters, _leased
from zart.repositories.executors import Backend, Operation
from zart.repositories.queues import record_of
from zart.repositories.records import ClaimedExecution, StepRecord
from zart.repositories.statements import Statement, one_of

executions = table_of(ExecutionRow)
queues = table_of(QueueRow)
starts = table_of(QueueStartRow)

RUNNING = ExecutionStatus.RUNNING.value
SCHEDULED = ExecutionStatus.SCHEDULED.value
#: What a limited queue's claim takes: starts, wake-ups, hand-backs and expired leases
#: (takeovers go through the cap too: the slot of a dead worker's run was freed when its
#: lease expired).
CLAIMABLE = [*READY_VALUES, RUNNING]
#: How much longer than two rate periods recorded starts are kept.
FORGET_MARGIN = timedelta(minutes=1)


def _now() -> Any:
    return bindparam("now", type_=executions.c.claimable_at.type)


def _running(queue: Any) -> Any:
    """The queue's running executions: a live lease (an expired one holds no slot)."""
    return (
        executions.c.queue_name == queue,
        executions.c.status == RUNNING,
        executions.c.claimable_at > _now(),
    )


def _candidates(dialect: str) -> Any:
    """The due rows of the queue it may take, in claim order: priority first; then
    round-robin over partitions: a row's place in its partition (oldest first) plus the
    partition's running executions, ties served from the partition after the ``cursor``
    (the last one served) on; at most ``rank_cap`` per partition, counting those running
    (the partition cap)."""
    queue: Any = bindparam("queue")
    rank = (
        func.row_number()
        .over(
            partition_by=executions.c.partition_key,
            order_by=(executions.c.priority.desc(), executions.c.claimable_at),
        )
        .label("rank")
    )
    due = (
        select(
            executions.c.execution_id,
            executions.c.status,
            executions.c.partition_key,
            executions.c.priority,
            executions.c.claimable_at,
            rank,
        )
        .where(
            executions.c.queue_name == queue,
            executions.c.claimable_at <= _now(),
            one_of(executions.c.status, "claimable", dialect),
            one_of(executions.c.task_name, "task_names", dialect),
            # Fresh starts of partitions at their rate limit wait (wake-ups do not).
            ~and_(
                executions.c.status == SCHEDULED,
                one_of(func.coalesce(executions.c.partition_key, ""), "blocked", dialect),
            ),
        )
        .subquery("due")
    )
    taken: Any = due.c.rank
    key = func.coalesce(due.c.partition_key, "")
    after_cursor = case((key > bindparam("cursor"), 0), else_=1)
    query = select(
        due.c.execution_id,
        due.c.status.label("previous_status"),
        due.c.claimable_at.label("due_at"),
        key.label("partition"),
    )
    running = (
        select(executions.c.partition_key, func.count().label("n"))
        .where(*_running(queue))
        .group_by(executions.c.partition_key)
        .subquery("running")
    )
    query = query.join_from(
        due,
        running,
        due.c.partition_key.is_not_distinct_from(running.c.partition_key),
        isouter=True,
    )
    taken = taken + func.coalesce(running.c.n, 0)
    return (
        query.where(taken <= bindparam("rank_cap"))
        .order_by(due.c.priority.desc(), taken, after_cursor, key, due.c.claimable_at)
        .limit(bindparam("limit"))
    )


LOCK = Statement(
    "lock_queue",
    lambda _d: select(queues).where(queues.c.name == bindparam("queue")).with_for_update(),
)
COUNT_RUNNING = Statement(
    "count_queue_running",
    lambda _d: select(func.count().label("count")).where(*_running(bindparam("queue"))),
)
FORGET_STARTS = Statement(
    "forget_queue_starts",
    lambda _d: starts.delete().where(
        starts.c.queue_name == bindparam("queue"),
        starts.c.started_at <= bindparam("since", type_=starts.c.started_at.type),
    ),
)
COUNT_PARTITION_STARTS = Statement(
    "count_queue_partition_starts",
    lambda _d: (
        select(
            starts.c.partition_key,
            func.count().label("count"),
            func.min(starts.c.started_at).label("oldest"),
        )
        .where(
            starts.c.queue_name == bindparam("queue"),
            starts.c.started_at > bindparam("since", type_=starts.c.started_at.type),
        )
        .group_by(starts.c.partition_key)
    ),
)
COUNT_STARTS = Statement(
    "count_queue_starts",
    lambda _d: select(
        func.count().label("count"), func.min(starts.c.started_at).label("oldest")
    ).where(
        starts.c.queue_name == bindparam("queue"),
        starts.c.started_at > bindparam("since", type_=starts.c.started_at.type),
    ),
)
CANDIDATES = Statement("queue_candidates", _candidates)
CLAIM = Statement(
    "claim_from_queue",
    lambda d: (
        update(executions)
        .where(
            one_of(executions.c.execution_id, "ids", d),
            # Still due and claimable: a row cancelled, finished or claimed since it was read
            # is left alone (its lease, if any, is live: claimable_at is its expiry).
            executions.c.claimable_at <= _now(),
            one_of(executions.c.status, "claimable", d),
        )
        .values(_leased())
        .returning(*executions.c)
    ),
)
MOVE_CURSOR = Statement(
    "move_queue_cursor",
    lambda _d: (
        update(queues)
        .where(queues.c.name == bindparam("queue"))
        .values(partition_cursor=bindparam("cursor"))
    ),
)
RECORD_START = Statement(
    "record_queue_start",
    lambda _d: starts.insert().values(
        queue_name=bindparam("queue"),
        execution_id=bindparam("execution_id"),
        partition_key=bindparam("partition_key", type_=starts.c.partition_key.type),
        started_at=bindparam("now", type_=starts.c.started_at.type),
    ),
)


@dataclass(frozen=True, slots=True)
class QueueClaim:
    """What a limited queue's claim took, with their runs' outcomes; ``more``: due work was
    left behind (by a limit or this claim's ``limit``), so a freed slot should claim again;
    ``retry_at``: when a rate limit lets the next start through (``None``: not rate-bound)."""

    claimed: list[ClaimedExecution]
    outcomes: dict[str, dict[str, StepRecord]]
    more: bool = False
    retry_at: datetime | None = None


@dataclass(slots=True)
class _Budget:
    """What the limits still allow in this claim."""

    total: int
    fresh: int | None = None  # starts the rate limit allows (None: no rate limit)
    retry_at: datetime | None = None
    #: Starts each partition's rate limit still allows, for the partitions that started
    #: within its window; another partition may start ``partition_fresh`` (None: no limit).
    by_partition: dict[str, int] = field(default_factory=dict)
    partition_fresh: int | None = None

    def blocked(self) -> list[str]:
        """The partitions at their rate limit: their fresh starts are not candidates."""
        return [key for key, left in self.by_partition.items() if left <= 0]

    def later(self, at: datetime) -> None:
        """A rate limit lets a start through at ``at``: the earliest such time is kept."""
        self.retry_at = at if self.retry_at is None else min(self.retry_at, at)


def _chosen(
    candidates: Sequence[Mapping[str, Any]], budget: _Budget
) -> tuple[dict[str, Mapping[str, Any]], bool]:
    """The candidates to take (their ids and statuses), in order, within the budget; and
    whether any was left behind."""
    chosen: dict[str, Mapping[str, Any]] = {}
    fresh = budget.fresh
    by_partition = dict(budget.by_partition)
    for row in candidates:
        if len(chosen) >= budget.total:
            break
        if row["previous_status"] == SCHEDULED:
            if fresh is not None and fresh <= 0:
                continue
            if budget.partition_fresh is not None:
                left = by_partition.get(row["partition"], budget.partition_fresh)
                if left <= 0:
                    continue
                by_partition[row["partition"]] = left - 1
            if fresh is not None:
                fresh -= 1
        chosen[row["execution_id"]] = row
    return chosen, len(chosen) < len(candidates) or len(candidates) >= budget.total


def _budget(queue: str, limits: QueueLimits, limit: int, now: datetime) -> Operation[_Budget]:
    """What the queue's limits allow now, counted under its lock."""
    budget = _Budget(limit)
    if limits.concurrency is not None:
        counted = yield COUNT_RUNNING, {"queue": queue, "now": now}
        budget.total = min(limit, limits.concurrency - int(counted[0]["count"]))
    rates = [r for r in (limits.rate_limit, limits.partition_rate_limit) if r is not None]
    if rates:
        # Kept a period longer than counted: a claim whose ``now`` was read before it waited
        # for the lock still counts every start it could share a window with.
        longest = max(r.period for r in rates)
        yield FORGET_STARTS, {"queue": queue, "since": now - 2 * longest - FORGET_MARGIN}
    rate = limits.rate_limit
    if rate is not None:
        counted = yield COUNT_STARTS, {"queue": queue, "since": now - rate.period}
        budget.fresh = rate.count - int(counted[0]["count"])
        oldest = counted[0]["oldest"]
        if budget.fresh <= 0 and oldest is not None:
            budget.later(oldest + rate.period)
    rate = limits.partition_rate_limit
    if rate is not None:
        counted = yield COUNT_PARTITION_STARTS, {"queue": queue, "since": now - rate.period}
        budget.partition_fresh = rate.count
        for row in counted:
            left = rate.count - int(row["count"])
            budget.by_partition[row["partition_key"] or ""] = left  # the candidates' key
            if left <= 0:
                budget.later(row["oldest"] + rate.period)
    return budget


def claim_from_queue(
    backend: Backend,
    *,
    queue: str,
    worker_id: str,
    task_names: Iterable[str],
    limit: int,
    now: datetime,
    lease_timeout: timedelta,
) -> Operation[QueueClaim]:
    """Claim up to ``limit`` executions of ``task_names`` from limited queue ``queue``, within
    its limits as stored now, and load their outcomes: one transaction (see the module)."""
    names = list(task_names)
    if not names or limit <= 0:
        return QueueClaim([], {})
    locked = yield LOCK, {"queue": queue}
    if not locked:
        return QueueClaim([], {})
    stored = record_of(locked[0])
    if stored.paused:
        return QueueClaim([], {})
    limits = stored.limits
    budget = yield from _budget(queue, limits, limit, now)
    if budget.total <= 0:
        return QueueClaim([], {}, more=True, retry_at=budget.retry_at)
    claim = _ClaimParameters(worker_id, names, limit, now, now + lease_timeout)
    partition_cap = limits.partition_concurrency
    candidates = yield (
        CANDIDATES,
        {
            "queue": queue,
            "now": now,
            "claimable": CLAIMABLE,
            "task_names": names,
            "rank_cap": MAX_LIMIT if partition_cap is None else partition_cap,
            "cursor": locked[0]["partition_cursor"] or "",
            "blocked": budget.blocked(),
            "limit": budget.total if budget.fresh is None else budget.total * 2,
        },
    )
    chosen, more = _chosen(candidates, budget)
    if not chosen:
        return QueueClaim([], {}, more=more, retry_at=budget.retry_at)
    found = yield CLAIM, claim.params(ids=list(chosen), claimable=CLAIMABLE)
    claimed = claim.claimed(found, chosen)
    place = {key: i for i, key in enumerate(chosen)}  # started in claim order: priority first
    claimed.sort(key=lambda c: place[c.execution.execution_id])
    if claimed:  # the next claim serves the partitions after the last one served here
        yield MOVE_CURSOR, {"queue": queue, "cursor": list(chosen.values())[-1]["partition"]}
    woken = [c.execution.run_id for c in claimed if c.previous_status is ExecutionStatus.WAITING]
    if woken:
        yield from timers_repo.fire_due_timers(backend, woken, now=now)
        yield from steps_repo.complete_due_sleeps(backend, woken, now=now)
    if limits.rate_limit is not None or limits.partition_rate_limit is not None:
        for item in claimed:
            if item.previous_status is ExecutionStatus.SCHEDULED:
                yield (
                    RECORD_START,
                    {
                        "queue": queue,
                        "execution_id": item.execution.execution_id,
                        "partition_key": item.execution.partition_key,
                        "now": now,
                    },
                )
    outcomes = yield from steps_repo.load_outcomes_of_runs(
        backend, [c.execution.run_id for c in claimed]
    )
    return QueueClaim(claimed, outcomes, more=more, retry_at=budget.retry_at)
