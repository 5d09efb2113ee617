"""Claims: a worker takes executions that are due (or whose lease expired), with what their
runs need to replay; and, where rows can be skipped when locked, takes waiting ones ahead of
their due time and holds them.

The claim is safe under concurrency because the candidate rows are chosen with ``FOR UPDATE
SKIP LOCKED`` inside a materialized CTE (evaluated once; PostgreSQL): two claimers never lock
the same row, and a row another transaction is changing is skipped rather than waited for. On
SQLite the transaction began with ``BEGIN IMMEDIATE``, so only one claimer runs at a time and
reading the due rows then updating them is safe. All executions claimed by one call share one
fresh lease token; every fence matches on (execution_id, token), so sharing it is safe.

Takeovers (a ``running`` row whose lease expired: its worker died or lost it mid-run) are not
taken by the ready claim but by a claim of their own, asked for by the worker, a few at a time
(usually one) and ahead of the ready rows: a dead worker's executions do not queue behind a
backlog of starts, and executions that died together (one of them may have killed the
worker) are resumed apart. Each claim counts, in ``crashed_claims``, the claims in a row that
ended without a report: one more for a takeover, back to 0 for any other claim.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    and_,
    any_,
    bindparam,
    case,
    func,
    literal_column,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from zart.models import (
    ExecutionRow,
    ExecutionStatus,
    StepRow,
    TimerRow,
    table_of,
)
from zart.repositories import rows
from zart.repositories import steps as steps_repo
from zart.repositories import timers as timers_repo
from zart.repositories.executors import Backend, Operation, autocommit
from zart.repositories.records import ClaimedExecution, Lease, StepRecord
from zart.repositories.statements import Statement, one_of

executions = table_of(ExecutionRow)
steps = table_of(StepRow)
timers = table_of(TimerRow)

#: What a claim hands its worker: the claimed executions and their runs' outcomes, by run.
Claim = tuple[list[ClaimedExecution], dict[str, dict[str, StepRecord]]]

#: The statuses the ready claim takes: a start, a wake-up, a run handed back. A ``running``
#: row is taken only by the takeover claim.
READY_VALUES = [ExecutionStatus.SCHEDULED.value, ExecutionStatus.WAITING.value]


def _lease_expiry() -> Any:
    return bindparam("expires_at", type_=executions.c.claimable_at.type)


def _claimed_cte(candidates: Any, claimable_at: Any = None) -> Any:
    """The UPDATE that leases the locked ``candidates`` (a CTE with their ``execution_id``);
    ``claimable_at`` defaults to the lease's expiry."""
    # The UPDATE finds the candidates by primary key (an array of their ids) rather than by
    # joining them: a join let PostgreSQL hash them against a scan of the whole table (~10 ms
    # per claim on 10,000 rows, more the more are stored), and a table whose statistics say
    # it is tiny could get a nested loop over such scans. Their previous status is joined to
    # the RETURNING rows, both at most `limit` long.
    return (
        update(executions)
        .where(
            executions.c.execution_id
            == any_(func.array(select(candidates.c.execution_id).scalar_subquery()))
        )
        .values(_leased(claimable_at))
        .returning(*executions.c)
        .cte("claimed")
    )


def _leased(claimable_at: Any = None) -> dict[str, Any]:
    """The claim's new values of an execution row."""
    return {
        "status": ExecutionStatus.RUNNING.value,
        "lease_token": bindparam("token"),
        "lease_owner": bindparam("worker_id"),
        "claimable_at": _lease_expiry() if claimable_at is None else claimable_at,
        "claim_count": executions.c.claim_count + 1,
        # The row's status before the claim: `running` means the last claim never reported
        # back (a takeover), anything else that it did.
        "crashed_claims": case(
            (executions.c.status == ExecutionStatus.RUNNING.value, executions.c.crashed_claims + 1),
            else_=0,
        ),
        "updated_at": bindparam("now", type_=executions.c.updated_at.type),
        "version": executions.c.version + 1,
    }


def _queues(dialect: str, subscribed: bool) -> list[Any]:
    """Not in a limited queue (:mod:`.queue_claims` claims those), and with ``subscribed``
    in one of the worker's ``queues``: filters, no join (an empty list excludes nothing)."""
    # Through an expression: the planner has no statistics for it, so the generic plan
    # estimates the exclusion as keeping most rows (as it does: few queues are limited).
    # On the column itself, with the list a parameter, it judges ``queue_name <> ALL(...)``
    # by the column's few distinct values as keeping almost none, and once the due rows are
    # out of physical order it reads every due row and sorts them (200 ms a claim at 300,000
    # due rows, instead of 0.1 ms on the claimable index).
    unlimited = func.coalesce(executions.c.queue_name, literal_column("''"))
    conditions = [~one_of(unlimited, "limited", dialect)]
    if subscribed:
        conditions.append(one_of(executions.c.queue_name, "queues", dialect))
    return conditions


def _due(dialect: str, status: Any, subscribed: bool = False, lane: str | None = None) -> Any:
    """The due rows of ``task_names`` whose status matches ``status``, oldest first, with
    their status before the claim: locked and passed by where another claimer holds them
    (PostgreSQL, as a CTE); the select of the claim's first statement on SQLite. ``lane``:
    ``"urgent"``, only rows of a priority above 0, highest first (on their partial index);
    ``"plain"``, only the others (see :func:`_candidates`)."""
    now = bindparam("now", type_=executions.c.updated_at.type)
    # Literals, not parameters: a generic plan matches the partial index only so.
    zero: Any = literal_column("0")
    lanes: dict[str | None, tuple[list[Any], list[Any]]] = {
        None: ([], [executions.c.claimable_at]),
        "urgent": (
            [executions.c.priority > zero],
            [executions.c.priority.desc(), executions.c.claimable_at],
        ),
        "plain": ([executions.c.priority <= zero], [executions.c.claimable_at]),
    }
    conditions, order = lanes[lane]
    due = (
        select(
            executions.c.execution_id,
            executions.c.status.label("previous_status"),
            # When it became claimable: the claim and wake-up lag metrics measure from it.
            executions.c.claimable_at.label("due_at"),
        )
        .where(
            status,
            executions.c.claimable_at <= now,
            *conditions,
            one_of(executions.c.task_name, "task_names", dialect),
            *_queues(dialect, subscribed),
        )
        .order_by(*order)
        .limit(bindparam("limit"))
    )
    if dialect != "postgresql":
        return due
    return (
        due.with_for_update(skip_locked=True)
        .cte(lane or "candidates")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )


def _candidates(dialect: str, subscribed: bool = False) -> Any:
    """The due rows of the ready claim (starts, wake-ups, runs handed back): those started
    with a priority above 0 first, highest first, then the rest oldest first, at most
    ``limit`` in all. Two reads, each on its own index, the second only evaluated when the
    first gave fewer than ``limit`` rows (PostgreSQL reads a CTE only as far as the query
    above it asks; SQLite's compound SELECT stops at its LIMIT): so a backlog of ordinary
    work does not delay a prioritized start by more than one claim, and where no execution
    has a priority the claim costs a look into an empty index more than before. A negative
    priority counts as 0 here: ranking it after the others would need the whole backlog
    sorted (a limited queue's claim ranks every priority)."""
    ready = one_of(executions.c.status, "ready", dialect)
    urgent = _due(dialect, ready, subscribed, "urgent")
    plain = _due(dialect, ready, subscribed, "plain")
    if dialect != "postgresql":
        both = union_all(select(urgent.subquery("urgent")), select(plain.subquery("plain")))
        return both.limit(bindparam("limit"))
    both = union_all(select(*urgent.c), select(*plain.c)).limit(bindparam("limit"))
    return both.cte("candidates").prefix_with("MATERIALIZED", dialect="postgresql")


def _takeover_candidates(dialect: str, subscribed: bool = False) -> Any:
    """The expired leases of the takeover claim, oldest expiry first: read on the partial
    index of ``running`` rows (the status is a literal so that a generic plan matches it),
    at most as many rows as the fleet runs at once, whatever backlog of starts is due."""
    return _due(
        dialect,
        executions.c.status == literal_column(f"'{ExecutionStatus.RUNNING.value}'"),
        subscribed,
    )


def _take_over(_dialect: str, subscribed: bool = False) -> Any:
    """PostgreSQL: the takeover claim in one statement (nothing to wake: the runs ran)."""
    candidates = _takeover_candidates("postgresql", subscribed)
    claimed = _claimed_cte(candidates)
    joined = claimed.c.execution_id == candidates.c.execution_id
    return select(*claimed.c, candidates.c.previous_status, candidates.c.due_at).join_from(
        claimed, candidates, joined
    )


def _claim_and_wake(_dialect: str, subscribed: bool = False) -> Any:
    """PostgreSQL: the whole claim in one statement: lock the candidates, lease them, and for
    the runs it brings back from ``waiting``, fire their due timers and complete their due
    sleeps (both find the woken runs by an array of their ids, as the claim finds its
    candidates)."""
    candidates = _candidates("postgresql", subscribed)
    claimed = _claimed_cte(candidates)
    joined = claimed.c.execution_id == candidates.c.execution_id
    woken = (
        select(claimed.c.current_run_id)
        .join_from(claimed, candidates, joined)
        .where(candidates.c.previous_status == ExecutionStatus.WAITING.value)
        .cte("woken")
    )
    woken_runs = any_(func.array(select(woken.c.current_run_id).scalar_subquery()))
    fired = timers_repo.due_timers_fired(timers.c.run_id == woken_runs).cte("fired")
    slept = steps_repo.due_sleeps_completed(steps.c.run_id == woken_runs).cte("slept")
    return (
        select(*claimed.c, candidates.c.previous_status, candidates.c.due_at)
        .join_from(claimed, candidates, joined)
        .add_cte(fired)
        .add_cte(slept)
    )


def still_leased(items: Any, *columns: Any) -> Any:
    """``columns`` of the executions ``items`` (with ``execution_id`` and ``token``) names
    that are still ``running`` under those leases: the fence of every group statement."""
    return (
        select(*columns)
        .join(
            items,
            and_(
                executions.c.execution_id == items.c.execution_id,
                executions.c.lease_token == items.c.token,
            ),
        )
        .where(executions.c.status == ExecutionStatus.RUNNING.value)
    )


def locked_still_leased(items: Any, *columns: Any) -> Any:
    """:func:`still_leased` as the CTE ``locked``: those rows locked in ``execution_id``
    order, as every multi-row locker locks them, so two never deadlock. The statement then
    updates them by primary key and takes their new values from ``columns``."""
    return (
        still_leased(items, *columns)
        .order_by(executions.c.execution_id)
        .with_for_update(of=executions)
        .cte("locked")
    )


def unnested(*columns: tuple[str, Any]) -> Any:
    """The items of a group statement: one array parameter per column (``unnest``)."""
    return (
        func.unnest(*(bindparam(name, type_=ARRAY(type_)) for name, type_ in columns))
        .table_valued(*(name.split("_", 1)[1] for name, _ in columns))
        .render_derived(name="items")
    )


CLAIM_AND_WAKE = Statement("claim", _claim_and_wake)
CLAIM_DUE = Statement("claim_due", _candidates)
# The same for a worker subscribed to some queues (``zart worker --queue``).
CLAIM_AND_WAKE_SUBSCRIBED = Statement("claim_subscribed", lambda d: _claim_and_wake(d, True))
CLAIM_DUE_SUBSCRIBED = Statement("claim_due_subscribed", lambda d: _candidates(d, True))
CLAIM_UPDATE = Statement(
    "claim_update",
    lambda d: (
        update(executions)
        .where(one_of(executions.c.execution_id, "ids", d))
        .values(_leased())
        .returning(*executions.c)
    ),
)
TAKE_OVER = Statement("take_over", _take_over)
TAKEOVER_DUE = Statement("takeover_due", _takeover_candidates)
TAKE_OVER_SUBSCRIBED = Statement("take_over_subscribed", lambda d: _take_over(d, True))
TAKEOVER_DUE_SUBSCRIBED = Statement(
    "takeover_due_subscribed", lambda d: _takeover_candidates(d, True)
)


class OutcomesNotLoaded(Exception):
    """A claim committed, but what followed it (reading its runs' outcomes, the ready claim
    after a takeover) failed (``__cause__``): what it took (``taken``, as the claim returns
    it), for the worker to hand back rather than wait out the leases."""

    def __init__(self, taken: Sequence[Any]) -> None:
        super().__init__("the claimed executions' outcomes could not be read")
        self.taken = list(taken)


@dataclass(frozen=True, slots=True)
class _ClaimParameters:
    """One claim's parameters (a fresh lease token shared by the batch) and its results."""

    worker_id: str
    task_names: list[str]
    limit: int
    now: datetime
    expires_at: datetime
    #: Limited queues (left to :mod:`.queue_claims`), and the queues the worker subscribes
    #: to (``None``: all of them).
    limited: Sequence[str] = ()
    queues: Sequence[str] | None = None
    token: str = field(default_factory=lambda: str(uuid.uuid4()))

    def params(self, **extra: Any) -> dict[str, Any]:
        return {
            "limited": list(self.limited),
            "queues": None if self.queues is None else list(self.queues),
            "task_names": self.task_names,
            "ready": READY_VALUES,
            "limit": self.limit,
            "now": self.now,
            "token": self.token,
            "worker_id": self.worker_id,
            "expires_at": self.expires_at,
            **extra,
        }

    def pick(self, everywhere: Statement, subscribed: Statement) -> Statement:
        """The variant of a claim statement for this worker's subscription."""
        return everywhere if self.queues is None else subscribed

    def claimed(
        self, found: Iterable[Mapping[str, Any]], previous: Mapping[str, Mapping[str, Any]]
    ) -> list[ClaimedExecution]:
        """``previous``: by execution id, the candidate row (its ``previous_status`` and
        ``due_at``) the claim took."""
        return [
            ClaimedExecution(
                lease=Lease(r["execution_id"], self.token, self.worker_id, self.expires_at),
                execution=rows.execution(r),
                previous_status=ExecutionStatus(previous[r["execution_id"]]["previous_status"]),
                due_at=previous[r["execution_id"]]["due_at"],
            )
            for r in found
        ]


def _by_id(found: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {r["execution_id"]: r for r in found}


def claim_ready_executions(
    backend: Backend,
    *,
    worker_id: str,
    task_names: Iterable[str],
    limit: int,
    now: datetime,
    lease_timeout: timedelta,
    takeovers: int = 0,
    limited: Sequence[str] = (),
    queues: Sequence[str] | None = None,
) -> Operation[list[ClaimedExecution]]:
    """Claim up to ``limit`` executions of ``task_names`` for this worker: first up to
    ``takeovers`` ``running`` ones whose lease expired (their worker died or lost the lease
    mid-run), oldest expiry first, each one's ``crashed_claims`` one more; then ready ones
    that are due. Each comes with its status before the claim (``waiting``: woken up;
    ``running``: taken over).

    For the runs it brings back from ``waiting`` the claim also does what each would
    otherwise do one by one: their due timers fire and their due sleeps are completed (a due
    sleep needs no handler code), for the whole batch at once. PostgreSQL: all of it in one
    statement, so it can run in autocommit; SQLite: four statements in the transaction.

    Executions of the ``limited`` queues are left to their own claim (:mod:`.queue_claims`);
    with ``queues``, only those of these queues are taken."""
    names = list(task_names)
    if not names or limit <= 0:
        return []
    claim = _ClaimParameters(
        worker_id, names, limit, now, now + lease_timeout, limited=limited, queues=queues
    )
    taken: list[ClaimedExecution] = []
    if takeovers > 0:
        taken = yield from _take_over_with(backend, claim, min(takeovers, limit))
        if len(taken) >= limit:
            return taken
    try:
        return taken + (yield from _claim_ready(backend, claim, limit - len(taken)))
    except Exception as exc:
        if not taken:  # nothing committed
            raise
        raise OutcomesNotLoaded(taken) from exc  # the takeovers committed on their own


def _claim_ready(
    backend: Backend, claim: _ClaimParameters, limit: int
) -> Operation[list[ClaimedExecution]]:
    if backend.modifying_ctes:
        statement = claim.pick(CLAIM_AND_WAKE, CLAIM_AND_WAKE_SUBSCRIBED)
        found = yield statement, claim.params(limit=limit)
        return claim.claimed(found, _by_id(found))
    due = yield claim.pick(CLAIM_DUE, CLAIM_DUE_SUBSCRIBED), claim.params(limit=limit)
    previous = _by_id(due)
    if not previous:
        return []
    found = yield CLAIM_UPDATE, claim.params(ids=list(previous))
    claimed = claim.claimed(found, previous)
    woken = [c.execution.run_id for c in claimed if c.previous_status is ExecutionStatus.WAITING]
    if woken:
        yield from timers_repo.fire_due_timers(backend, woken, now=claim.now)
        yield from steps_repo.complete_due_sleeps(backend, woken, now=claim.now)
    return claimed


def _take_over_with(
    backend: Backend, claim: _ClaimParameters, limit: int
) -> Operation[list[ClaimedExecution]]:
    if backend.modifying_ctes:
        found = yield claim.pick(TAKE_OVER, TAKE_OVER_SUBSCRIBED), claim.params(limit=limit)
        return claim.claimed(found, _by_id(found))
    due = yield claim.pick(TAKEOVER_DUE, TAKEOVER_DUE_SUBSCRIBED), claim.params(limit=limit)
    previous = _by_id(due)
    if not previous:
        return []
    found = yield CLAIM_UPDATE, claim.params(ids=list(previous))
    return claim.claimed(found, previous)


def _outcomes_of(
    backend: Backend, claimed: Sequence[ClaimedExecution], taken: Sequence[Any]
) -> Operation[dict[str, dict[str, StepRecord]]]:
    """The outcomes of the claimed runs: complete and final, since the claim's new leases keep
    every earlier owner's checkpoint out and this is a new statement. Should the read fail,
    :class:`OutcomesNotLoaded` says what was ``taken``."""
    if not claimed:
        return {}
    try:
        return (
            yield from steps_repo.load_outcomes_of_runs(
                backend, [c.execution.run_id for c in claimed]
            )
        )
    except Exception as exc:
        raise OutcomesNotLoaded(taken) from exc


@autocommit
def claim_and_load(
    backend: Backend,
    *,
    worker_id: str,
    task_names: Iterable[str],
    limit: int,
    now: datetime,
    lease_timeout: timedelta,
    takeovers: int = 0,
    limited: Sequence[str] = (),
    queues: Sequence[str] | None = None,
) -> Operation[Claim]:
    """The worker's claim: :func:`claim_ready_executions` (with ``takeovers`` expired leases
    first), then the outcomes of the claimed runs in a statement of its own (PostgreSQL: two
    round trips, each committed alone; three with takeovers asked for)."""
    claimed = yield from claim_ready_executions(
        backend,
        worker_id=worker_id,
        task_names=task_names,
        limit=limit,
        now=now,
        lease_timeout=lease_timeout,
        takeovers=takeovers,
        limited=limited,
        queues=queues,
    )
    return claimed, (yield from _outcomes_of(backend, claimed, claimed))
