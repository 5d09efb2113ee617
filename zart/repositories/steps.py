"""Step outcomes and their attempts: the checkpoint (alone or with a timer; a group's is in
:mod:`.group_checkpoints`), the one-query replay read, the due sleeps a claim completes, and
the timeline.

The checkpoint is fenced: the step row is inserted from a SELECT that yields a row only while
the lease token still matches, so a fenced-out worker inserts nothing. PostgreSQL: one
statement (the lease read ``FOR SHARE``, the attempt insert a data-modifying CTE), so a
checkpoint is one round trip in autocommit; a concurrent claim (an UPDATE) either waits for
it to commit or committed first and the token no longer matches; parallel checkpoints of one
execution take share locks that do not block each other. SQLite: the attempt is a second
statement inside the ``BEGIN IMMEDIATE`` transaction, which already excludes every other
writer. A step's first try that succeeded, the common case, writes no attempt row at all: the
step row records it (:func:`in_step_row`, :data:`FIRST_CHECKPOINT`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    bindparam,
    literal_column,
    select,
)

from zart.errors import LeaseLost, NonDeterministicReplay
from zart.models import (
    AttemptStatus,
    ExecutionRow,
    StepAttemptRow,
    StepKind,
    StepRow,
    StepStatus,
    TimerKind,
    table_of,
)
from zart.repositories import rows, timers
from zart.repositories.executors import Backend, Operation, autocommit, reads
from zart.repositories.records import AttemptOutcome, Lease, StepAttemptRecord, StepRecord
from zart.repositories.statements import Statement, one_of, upsert

executions = table_of(ExecutionRow)
steps = table_of(StepRow)
attempts = table_of(StepAttemptRow)


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What to store for one step name in one run (a first write or an update after a retry)."""

    run_id: str
    name: str
    kind: StepKind
    status: StepStatus
    position: int
    attempts: int
    result: Any = None
    error: Any = None
    deadline_at: datetime | None = None
    wake_at: datetime | None = None
    completed_at: datetime | None = None
    #: The JSON schema of an event wait's ``model=``, which offers of the event must fit.
    event_schema: Any = None
    #: The concurrent branch it runs in (``zart.runtime.paths``).
    branch: str | None = None


#: One checkpoint of a group: the lease that fences it, the outcome, the attempt (if any).
Checkpoint = tuple[Lease, StepOutcome, AttemptOutcome | None]

STEP_COLUMNS = (
    "run_id",
    "name",
    "kind",
    "status",
    "result",
    "error",
    "attempts",
    "position",
    "deadline_at",
    "wake_at",
    "created_at",
    "updated_at",
    "completed_at",
    "event_schema",
    "branch",
)
#: What a retry's outcome replaces of the earlier attempt's (a completed outcome never changes).
_UPDATED_ON_CONFLICT = tuple(
    c for c in STEP_COLUMNS if c not in ("run_id", "name", "position", "created_at", "branch")
)
ATTEMPT_COLUMNS = ("attempt_number", "status", "result", "error", "started_at", "completed_at")


def upserted(insert: Any, source: Any) -> Any:
    """``insert`` of the step columns (and the lease's execution id) from ``source``: a retry's
    outcome replaces the earlier attempt's; a completed outcome never changes."""
    return insert.from_select([*STEP_COLUMNS, "execution_id"], source).on_conflict_do_update(
        index_elements=["run_id", "name"],
        set_={column: getattr(insert.excluded, column) for column in _UPDATED_ON_CONFLICT},
        where=steps.c.status != StepStatus.COMPLETED.value,
    )


def _attempt_params() -> list[Any]:
    return [bindparam(f"a_{c}", type_=attempts.c[c].type) for c in ATTEMPT_COLUMNS]


#: What a checkpoint returns of the row it wrote: what the row kept or was given (see
#: :func:`written_record`), not the JSON it was just sent.
_KEPT = (steps.c.step_id, steps.c.position, steps.c.created_at)


def _lease_held() -> Any:
    """The execution row while the lease ``lease_execution_id``/``lease_token`` holds it: the
    fence of every checkpoint, and the read that tells a refusal's reason."""
    return select(executions.c.execution_id).where(
        executions.c.execution_id == bindparam("lease_execution_id"),
        executions.c.lease_token == bindparam("lease_token"),
    )


def _checkpoint(dialect: str, with_attempt: bool) -> Any:
    """The fenced step upsert (with the attempt insert on PostgreSQL)."""
    held = _lease_held()
    values = [bindparam(c, type_=steps.c[c].type).label(c) for c in STEP_COLUMNS]
    if dialect != "postgresql":  # the fence folds into the upsert's SELECT
        source = select(*values, executions.c.execution_id).where(held.whereclause)
        return upserted(upsert(steps, dialect), source).returning(*_KEPT)
    lease = held.with_for_update(read=True).cte("held")
    written = (
        upserted(upsert(steps, dialect), select(*values, lease.c.execution_id))
        .returning(*steps.c)
        .cte("written")
    )
    query = select(*(written.c[c.name] for c in _KEPT)).add_cte(lease)
    if with_attempt:
        attempt = (
            attempts.insert()
            .from_select(
                ["step_id", *ATTEMPT_COLUMNS], select(written.c.step_id, *_attempt_params())
            )
            .returning(attempts.c.attempt_id)
            .cte("attempt")
        )
        query = query.add_cte(attempt)
    return query


#: What :data:`FIRST_CHECKPOINT` writes as constants, each as the general statement stores it
#: (a Python ``None`` in a JSON column is JSON null there, not SQL NULL).
_JSON_NULL = {"postgresql": "'null'::jsonb", "sqlite": "'null'"}


def _first_checkpoint(dialect: str) -> Any:
    """The checkpoint almost every step makes: a step that succeeded at its first try, stored
    as its one row, which is also the record of that try (``created_at`` its start,
    ``completed_at`` its end; :func:`list_step_attempts` reads it back as attempt 0). One
    heap row and its indexes, no attempt row, and 13 parameters (the lease's two included)
    where the general statement takes 23. ``ON CONFLICT DO NOTHING``: where a row of the
    step exists already, or the lease is gone, it writes and returns nothing, and the general
    statement decides (overwrite an unfinished outcome and record the attempt, or refuse)."""
    held = _lease_held()
    if dialect == "postgresql":
        held = held.with_for_update(read=True)
    null: Any = literal_column(_JSON_NULL[dialect])
    now = bindparam("now", type_=steps.c.updated_at.type)
    values = {
        **{c: bindparam(c, type_=steps.c[c].type) for c in _FIRST_PARAMS},
        "status": literal_column(f"'{StepStatus.COMPLETED.value}'"),
        "error": null,
        "wake_at": literal_column("NULL"),
        "created_at": bindparam("started_at", type_=steps.c.created_at.type),
        "updated_at": now,
        "event_schema": null,
    }
    source = held.with_only_columns(
        *(values[c].label(c) for c in STEP_COLUMNS), executions.c.execution_id
    )
    return (
        upsert(steps, dialect)
        .from_select([*STEP_COLUMNS, "execution_id"], source)
        .on_conflict_do_nothing(index_elements=["run_id", "name"])
        .returning(*_KEPT)
    )


#: The parameters of :data:`FIRST_CHECKPOINT` among the step's columns.
_FIRST_PARAMS = (
    "run_id",
    "name",
    "kind",
    "result",
    "attempts",
    "position",
    "deadline_at",
    "completed_at",
    "branch",
)


def in_step_row(outcome: StepOutcome, attempt: AttemptOutcome | None) -> bool:
    """Whether ``attempt`` is stored in the step row itself, with no attempt row: the first
    try of a step, succeeded, whose outcome (completed, no error, wake-up or schema) it is
    and ends when it does. :func:`list_step_attempts` gives it back from the row."""
    return (
        attempt is not None
        and attempt.attempt_number == 0
        and attempt.status is AttemptStatus.SUCCEEDED
        and attempt.result is None
        and attempt.error is None
        and outcome.kind is StepKind.STEP
        and outcome.status is StepStatus.COMPLETED
        and outcome.attempts == 1
        and outcome.error is None
        and outcome.wake_at is None
        and outcome.event_schema is None
        and attempt.completed_at == outcome.completed_at
    )


def due_sleeps_completed(
    runs: ColumnElement[bool], due: Any = None, completed_at: Any = None
) -> Any:
    """The UPDATE that completes the sleeps of the runs ``runs`` selects that are due by
    ``due`` (default: ``:now``), stamped ``completed_at`` (default: ``:now``): a sleep needs
    no handler code to end. Part of the claim (:mod:`.claims`) and of :data:`COMPLETE_SLEEPS`."""
    now = bindparam("now", type_=steps.c.completed_at.type)
    return (
        steps.update()
        .where(
            runs,
            steps.c.kind == StepKind.SLEEP.value,
            steps.c.status == StepStatus.WAITING.value,
            steps.c.wake_at <= (now if due is None else due),
        )
        .values(
            status=StepStatus.COMPLETED.value,
            # JSON null, as the handler's own checkpoint of a sleep stores it
            result=bindparam("sleep_result", None, type_=steps.c.result.type),
            attempts=1,
            updated_at=now,
            completed_at=now if completed_at is None else completed_at,
        )
    )


CHECKPOINT = Statement("checkpoint", lambda d: _checkpoint(d, with_attempt=False))
#: PostgreSQL: the attempt rides along as a CTE; SQLite: the same upsert as CHECKPOINT.
CHECKPOINT_WITH_ATTEMPT = Statement(
    "checkpoint_with_attempt", lambda d: _checkpoint(d, with_attempt=True)
)
ATTEMPT = Statement(
    "attempt",
    lambda _d: attempts.insert().values(
        step_id=bindparam("step_id"),
        **{c: p for c, p in zip(ATTEMPT_COLUMNS, _attempt_params(), strict=True)},
    ),
)
FIRST_CHECKPOINT = Statement("first_checkpoint", _first_checkpoint)
LEASE_HELD = Statement("lease_held", lambda _d: _lease_held())
OUTCOMES_OF_RUNS = Statement(
    "outcomes_of_runs", lambda d: select(steps).where(one_of(steps.c.run_id, "run_ids", d))
)
COMPLETE_SLEEPS = Statement(
    "complete_sleeps",
    lambda d: due_sleeps_completed(one_of(steps.c.run_id, "run_ids", d)).returning(steps.c.step_id),
)
RUN_STEPS = Statement(
    "run_steps",
    lambda _d: (
        select(steps)
        .where(steps.c.run_id == bindparam("run_id"))
        .order_by(steps.c.position, steps.c.step_id)
    ),
)
WAITING_STEPS = Statement(
    "waiting_steps",
    lambda d: (
        select(steps)
        .where(one_of(steps.c.run_id, "run_ids", d), steps.c.status == StepStatus.WAITING.value)
        .order_by(steps.c.run_id, steps.c.position, steps.c.step_id)
    ),
)
STEP_ATTEMPTS = Statement(
    "step_attempts",
    lambda d: (
        select(attempts)
        .where(one_of(attempts.c.step_id, "step_ids", d, Integer()))
        .order_by(attempts.c.step_id, attempts.c.attempt_number)
    ),
)


def _step_values(
    outcome: StepOutcome, now: datetime, attempt: AttemptOutcome | None
) -> dict[str, Any]:
    """The step row's columns. ``created_at`` is when the step began: the start of the
    attempt written with it (a retry's overwrite keeps the first), else now."""
    return {
        "run_id": outcome.run_id,
        "name": outcome.name,
        "kind": outcome.kind.value,
        "status": outcome.status.value,
        "result": outcome.result,
        "error": outcome.error,
        "attempts": outcome.attempts,
        "position": outcome.position,
        "deadline_at": outcome.deadline_at,
        "wake_at": outcome.wake_at,
        "created_at": now if attempt is None else attempt.started_at,
        "updated_at": now,
        "completed_at": outcome.completed_at,
        "event_schema": outcome.event_schema,
        "branch": outcome.branch,
    }


def _attempt_values(attempt: AttemptOutcome | None) -> dict[str, Any]:
    if attempt is None:
        return {}
    return {
        "a_attempt_number": attempt.attempt_number,
        "a_status": attempt.status.value,
        "a_result": attempt.result,
        "a_error": attempt.error,
        "a_started_at": attempt.started_at,
        "a_completed_at": attempt.completed_at,
    }


def refusal(lease: Lease, outcome: StepOutcome) -> Operation[LeaseLost | NonDeterministicReplay]:
    """Why a checkpoint wrote nothing (the rare path, so the extra read is fine): the lease
    is gone, or the step already has a completed outcome (which the upsert never
    overwrites)."""
    params = {"lease_execution_id": lease.execution_id, "lease_token": lease.token}
    if not (yield LEASE_HELD, params):
        return LeaseLost(lease.execution_id)
    return NonDeterministicReplay(
        f"step {outcome.name!r} already has a completed outcome in run {outcome.run_id};"
        " a completed outcome is never overwritten"
    )


@autocommit
def record_step_outcome(
    backend: Backend,
    lease: Lease,
    outcome: StepOutcome,
    *,
    attempt: AttemptOutcome | None = None,
    now: datetime,
) -> Operation[StepRecord]:
    """Store a step's outcome (and the attempt that produced it), fenced by ``lease``: one
    statement on PostgreSQL (see the module docstring). Raises :class:`LeaseLost`, having
    written nothing, when the lease token no longer matches, and
    :class:`NonDeterministicReplay` when the step has a completed outcome already."""
    if in_step_row(outcome, attempt):
        assert attempt is not None
        found = yield (
            FIRST_CHECKPOINT,
            {
                "lease_execution_id": lease.execution_id,
                "lease_token": lease.token,
                "run_id": outcome.run_id,
                "name": outcome.name,
                "kind": outcome.kind.value,
                "result": outcome.result,
                "attempts": outcome.attempts,
                "position": outcome.position,
                "deadline_at": outcome.deadline_at,
                "completed_at": outcome.completed_at,
                "branch": outcome.branch,
                "started_at": attempt.started_at,
                "now": now,
            },
        )
        if found:
            return written_record(found[0], lease, outcome, now)
        # A row of the step exists, or the lease is gone: the general statement decides.
    params = {
        **_step_values(outcome, now, attempt),
        "lease_execution_id": lease.execution_id,
        "lease_token": lease.token,
        **_attempt_values(attempt),
    }
    found = yield (CHECKPOINT if attempt is None else CHECKPOINT_WITH_ATTEMPT), params
    if not found:
        raise (yield from refusal(lease, outcome))
    record = written_record(found[0], lease, outcome, now)
    if attempt is not None and not backend.modifying_ctes:
        yield ATTEMPT, {**params, "step_id": record.step_id}
    return record


@autocommit
def record_checkpoint(
    backend: Backend, item: Checkpoint, *, now: datetime
) -> Operation[StepRecord]:
    """:func:`record_step_outcome` of one group item (the group commit's lone write)."""
    lease, outcome, attempt = item
    return (yield from record_step_outcome(backend, lease, outcome, attempt=attempt, now=now))


def written_record(row: Any, lease: Lease, outcome: StepOutcome, now: datetime) -> StepRecord:
    """The record a checkpoint stored: what the item wrote, plus what the row kept or
    was given (its id; on a retry's overwrite, its first ``position`` and ``created_at``).
    The statement returns only those, so the JSON just written is not sent back and decoded."""
    return StepRecord(
        step_id=row["step_id"],
        run_id=outcome.run_id,
        execution_id=lease.execution_id,
        name=outcome.name,
        kind=outcome.kind,
        status=outcome.status,
        result=outcome.result,
        error=outcome.error,
        attempts=outcome.attempts,
        position=row["position"],
        deadline_at=outcome.deadline_at,
        wake_at=outcome.wake_at,
        created_at=row["created_at"],
        updated_at=now,
        completed_at=outcome.completed_at,
        branch=outcome.branch,
    )


def record_waiting_step(
    backend: Backend,
    lease: Lease,
    outcome: StepOutcome,
    *,
    attempt: AttemptOutcome | None = None,
    timer: TimerKind,
    now: datetime,
) -> Operation[StepRecord]:
    """:func:`record_step_outcome` of a wait (a sleep, an event deadline, a retry back-off)
    that will suspend, and its timer at the outcome's ``wake_at``, in one transaction: the
    wait is never stored without what wakes it."""
    record = yield from record_step_outcome(backend, lease, outcome, attempt=attempt, now=now)
    if outcome.wake_at is not None:
        yield from timers.create_timer(
            backend,
            execution_id=lease.execution_id,
            run_id=outcome.run_id,
            name=outcome.name,
            kind=timer,
            fire_at=outcome.wake_at,
            now=now,
        )
    return record


@reads
def load_outcomes_of_runs(
    backend: Backend, run_ids: Sequence[str]
) -> Operation[dict[str, dict[str, StepRecord]]]:
    """Every stored step outcome of each run, by run and step name: the whole replay state of
    a claim's batch in one query (index range scans on the unique ``(run_id, name)``)."""
    found: dict[str, dict[str, StepRecord]] = {run_id: {} for run_id in run_ids}
    if not run_ids:
        return found
    for row in (yield OUTCOMES_OF_RUNS, {"run_ids": list(run_ids)}):
        found[row["run_id"]][row["name"]] = rows.step(row)
    return found


@reads
def load_run_outcomes(backend: Backend, run_id: str) -> Operation[dict[str, StepRecord]]:
    """Every stored step outcome of a run, by step name (one query)."""
    return (yield from load_outcomes_of_runs(backend, [run_id]))[run_id]


def complete_due_sleeps(
    backend: Backend, run_ids: Sequence[str], *, now: datetime
) -> Operation[int]:
    """Complete the sleeps of ``run_ids`` that are due at ``now``, in the caller's transaction
    (the claim's, which holds their leases): what each resumed handler would otherwise store
    with a checkpoint of its own the moment it passes the sleep. How many were completed."""
    if not run_ids:
        return 0
    return len((yield COMPLETE_SLEEPS, {"run_ids": list(run_ids), "now": now}))


@reads
def list_steps(backend: Backend, run_id: str) -> Operation[list[StepRecord]]:
    """A run's steps in the order they were first recorded (the timeline)."""
    return [rows.step(r) for r in (yield RUN_STEPS, {"run_id": run_id})]


@reads
def list_waiting_steps(backend: Backend, run_ids: Sequence[str]) -> Operation[list[StepRecord]]:
    """The steps still waiting (a sleep, an event, a retry back-off) in the given runs, in
    timeline order: what waiting executions wait for (one query)."""
    if not run_ids:
        return []
    return [rows.step(r) for r in (yield WAITING_STEPS, {"run_ids": list(run_ids)})]


@reads
def list_step_attempts(
    backend: Backend, steps: Sequence[StepRecord]
) -> Operation[dict[int, list[StepAttemptRecord]]]:
    """The attempts of the given steps, by step id, oldest first. A first try that succeeded
    has no row of its own (:func:`in_step_row`): it is read back from its step's row, with no
    ``attempt_id``."""
    if not steps:
        return {}
    found: dict[int, list[StepAttemptRecord]] = {step.step_id: [] for step in steps}
    for row in (yield STEP_ATTEMPTS, {"step_ids": list(found)}):
        found[row["step_id"]].append(rows.attempt(row))
    for step in steps:
        if not found[step.step_id] and _succeeded_at_first_try(step):
            found[step.step_id].append(_first_try(step))
    return found


def _succeeded_at_first_try(step: StepRecord) -> bool:
    return (
        step.kind is StepKind.STEP
        and step.status is StepStatus.COMPLETED
        and step.attempts == 1
        and step.completed_at is not None
    )


def _first_try(step: StepRecord) -> StepAttemptRecord:
    """The attempt a step row records by itself (see :func:`in_step_row`)."""
    assert step.completed_at is not None
    return StepAttemptRecord(
        attempt_id=None,
        step_id=step.step_id,
        attempt_number=0,
        status=AttemptStatus.SUCCEEDED,
        result=None,
        error=None,
        started_at=step.created_at,
        completed_at=step.completed_at,
    )
