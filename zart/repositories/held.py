"""Claiming ahead: a worker takes waiting executions whose timers are due within a few
seconds, before they are due, and holds them to start each the moment it is due (a crowd of
sleepers due at one instant then costs no claim when it comes); and the fence and the
hand-back of what it holds. PostgreSQL only (rows skipped when locked): see
:func:`claim_ahead`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, any_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from zart.models import (
    ExecutionRow,
    ExecutionStatus,
    StepKind,
    StepRow,
    StepStatus,
    TimerRow,
    table_of,
)
from zart.repositories import steps as steps_repo
from zart.repositories import timers as timers_repo
from zart.repositories.claims import (
    _by_id,
    _claimed_cte,
    _ClaimParameters,
    _lease_expiry,
    _outcomes_of,
    _queues,
    locked_still_leased,
    still_leased,
    unnested,
)
from zart.repositories.executions import leaving_worker
from zart.repositories.executors import Backend, Operation, autocommit
from zart.repositories.records import ClaimedExecution, Lease, StepRecord
from zart.repositories.statements import Statement

executions = table_of(ExecutionRow)
steps = table_of(StepRow)
timers = table_of(TimerRow)


def _claim_ahead(_dialect: str, subscribed: bool = False) -> Any:
    waits_for_event = (
        select(steps.c.step_id)
        .where(
            steps.c.run_id == executions.c.current_run_id,
            steps.c.kind == StepKind.EVENT.value,
            steps.c.status == StepStatus.WAITING.value,
        )
        .exists()
    )
    candidates = (
        select(
            executions.c.execution_id,
            executions.c.status.label("previous_status"),
            executions.c.claimable_at.label("due_at"),
        )
        .where(
            executions.c.claimable_at <= bindparam("horizon", type_=executions.c.claimable_at.type),
            executions.c.task_name == any_(bindparam("task_names", type_=ARRAY(String))),
            executions.c.status == ExecutionStatus.WAITING.value,
            ~waits_for_event,
            *_queues("postgresql", subscribed),
        )
        .order_by(executions.c.claimable_at)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
        .cte("candidates")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    # Never claimable again before it is due, even should the lease expire sooner.
    claimed = _claimed_cte(candidates, func.greatest(_lease_expiry(), executions.c.claimable_at))
    joined = claimed.c.execution_id == candidates.c.execution_id
    ahead = (
        select(claimed.c.current_run_id.label("run_id"), candidates.c.due_at)
        .join_from(claimed, candidates, joined)
        .cte("ahead")
    )
    fired = timers_repo.due_timers_fired(
        timers.c.run_id == ahead.c.run_id, due=ahead.c.due_at, fired_at=timers.c.fire_at
    ).cte("fired")
    slept = steps_repo.due_sleeps_completed(
        steps.c.run_id == ahead.c.run_id, due=ahead.c.due_at, completed_at=steps.c.wake_at
    ).cte("slept")
    return (
        select(*claimed.c, candidates.c.previous_status, candidates.c.due_at)
        .join_from(claimed, candidates, joined)
        .add_cte(fired)
        .add_cte(slept)
    )


def _release_held(_dialect: str) -> Any:
    items = unnested(
        ("r_execution_id", String()),
        ("r_token", String()),
        ("r_due_at", executions.c.claimable_at.type),
    )
    locked = locked_still_leased(items, executions.c.execution_id, items.c.due_at)
    return (
        update(executions)
        .where(executions.c.execution_id == locked.c.execution_id)
        .values(leaving_worker(ExecutionStatus.WAITING.value, claimable_at=locked.c.due_at))
        .returning(executions.c.execution_id)
    )


CLAIM_AHEAD = Statement("claim_ahead", _claim_ahead)
CLAIM_AHEAD_SUBSCRIBED = Statement("claim_ahead_subscribed", lambda d: _claim_ahead(d, True))
RELEASE_HELD = Statement("release_held", _release_held)
STILL_HELD = Statement(
    "still_held",
    lambda _d: still_leased(
        unnested(("h_execution_id", String()), ("h_token", String())), executions.c.execution_id
    ),
)


@autocommit
def claim_ahead(
    backend: Backend,
    *,
    worker_id: str,
    task_names: Iterable[str],
    limit: int,
    now: datetime,
    horizon: datetime,
    lease_timeout: timedelta,
    limited: Sequence[str] = (),
    queues: Sequence[str] | None = None,
) -> Operation[tuple[list[tuple[ClaimedExecution, datetime]], dict[str, dict[str, StepRecord]]]]:
    """Claim up to ``limit`` waiting executions that become due by ``horizon`` (a little after
    ``now``), before they are due, each with the time it is due, and their outcomes: the
    worker holds them and starts them then, so a crowd of sleepers due at the same instant
    costs no claim when it comes. Only waits a timer ends are taken: a run waiting for an
    event stays where an event wakes it at once. Where rows are skipped when locked
    (:attr:`Backend.skips_locked`) only.

    The same statement does what waking them will need, ahead of time: the timers due by
    then are marked fired at their fire time, and the sleeps due by then completed at their
    wake time (a sleep runs no handler code), so starting them when due writes nothing. That
    is safe because nothing can resume them before they are due: the holder starts them then,
    and should it die, they become claimable again at their lease expiry or their due time,
    whichever is later (also after a renewal, :func:`.leases.renew_leases`)."""
    names = list(task_names)
    if not names or limit <= 0:
        return [], {}
    claim = _ClaimParameters(
        worker_id, names, limit, now, now + lease_timeout, limited=limited, queues=queues
    )
    statement = claim.pick(CLAIM_AHEAD, CLAIM_AHEAD_SUBSCRIBED)
    found = yield statement, claim.params(horizon=horizon)
    claimed = claim.claimed(found, _by_id(found))
    ahead = [(c, r["due_at"]) for c, r in zip(claimed, found, strict=True)]
    return ahead, (yield from _outcomes_of(backend, claimed, ahead))


@autocommit
def still_held(backend: Backend, leases: Sequence[Lease]) -> Operation[set[str]]:
    """Of executions claimed ahead (:func:`claim_ahead`), those whose lease still holds: one
    missing was cancelled or taken over while it was held. One read, the fence a held
    execution passes before it is started."""
    if not leases:
        return set()
    found = yield (
        STILL_HELD,
        {
            "h_execution_id": [lease.execution_id for lease in leases],
            "h_token": [lease.token for lease in leases],
        },
    )
    return {row["execution_id"] for row in found}


@autocommit
def release_held(
    backend: Backend, held: Sequence[tuple[Lease, datetime]], *, now: datetime
) -> Operation[int]:
    """Give back executions claimed ahead and not started (the worker stops): ``waiting``
    again until the time each is due, as they were. Fenced, the rows locked in
    ``execution_id`` order and updated by primary key; returns how many were still held."""
    if not held:
        return 0
    found = yield (
        RELEASE_HELD,
        {
            "r_execution_id": [lease.execution_id for lease, _ in held],
            "r_token": [lease.token for lease, _ in held],
            "r_due_at": [due_at for _, due_at in held],
            "now": now,
        },
    )
    return len(found)
