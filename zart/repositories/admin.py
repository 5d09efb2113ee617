"""Admin operations on stored executions: retry a failed step, start a new run (restart or
selective rerun) with some steps preserved.

Every operation locks the execution row first (``FOR UPDATE`` on PostgreSQL; SQLite's
``BEGIN IMMEDIATE`` already excludes other writers) and clears its lease token. A worker still
running the execution is fenced out by that: its checkpoints match on the token, which no
longer matches, so it cannot write into the old run, let alone the new one; its next heartbeat
or checkpoint tells it to stop.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update

from zart.models import (
    EventRow,
    ExecutionRow,
    ExecutionStatus,
    RunRow,
    RunTrigger,
    StepAttemptRow,
    StepKind,
    StepRow,
    StepStatus,
    table_of,
)
from zart.repositories import events as events_repo
from zart.repositories import runs as runs_repo
from zart.repositories import steps as steps_repo
from zart.repositories.executions import ACTIVE_VALUES, get_execution
from zart.repositories.executors import Backend, Operation
from zart.repositories.records import ExecutionRecord, RetriedStep, RunRecord, StepRecord
from zart.repositories.statements import Statement, one_of

executions = table_of(ExecutionRow)
runs = table_of(RunRow)
steps = table_of(StepRow)
attempts = table_of(StepAttemptRow)
events = table_of(EventRow)


def _now(column: Any) -> Any:
    return bindparam("now", type_=column.type)


def _reopened(**values: Any) -> dict[str, Any]:
    """An execution made claimable again with no lease: the old token fences out its holder."""
    return {
        "status": ExecutionStatus.SCHEDULED.value,
        "result": None,
        "error": None,
        "completed_at": None,
        "claimable_at": _now(executions.c.claimable_at),
        "lease_token": None,
        "lease_owner": None,
        "updated_at": _now(executions.c.updated_at),
        "version": executions.c.version + 1,
        "deadline_at": bindparam("deadline_at", type_=executions.c.deadline_at.type),
        **values,
    }


def _execution() -> Any:
    return executions.c.execution_id == bindparam("execution_id")


#: What a preserved step keeps of the old run's row (all but its run and its branch), and its
#: attempts'. Without a branch the new run answers it by name, not on the step path
#: (``zart.runtime.paths``): a rerun changes the path on purpose.
_STEP_COPIED = (
    "execution_id",
    *(c for c in steps_repo.STEP_COLUMNS if c not in ("run_id", "branch")),
)
_ATTEMPT_COPIED = steps_repo.ATTEMPT_COLUMNS

LOCK = Statement(
    "lock_execution_for_admin",
    lambda _d: select(executions.c.execution_id).where(_execution()).with_for_update(),
)
RETRY_STEP = Statement(
    "retry_step",
    lambda _d: (
        update(steps)
        .where(steps.c.step_id == bindparam("step_id"))
        .values(
            status=StepStatus.WAITING.value,
            wake_at=None,
            deadline_at=None,
            completed_at=None,
            updated_at=_now(steps.c.updated_at),
        )
    ),
)
REOPEN_RUN = Statement(
    "reopen_run",
    lambda _d: (
        update(runs)
        .where(runs.c.run_id == bindparam("run_id"))
        .values(status=ExecutionStatus.SCHEDULED.value, result=None, error=None, completed_at=None)
    ),
)
REOPEN = Statement(
    "reopen_execution", lambda _d: update(executions).where(_execution()).values(_reopened())
)
LAST_RUN_INDEX = Statement(
    "last_run_index",
    lambda _d: select(func.max(runs.c.run_index).label("last")).where(
        runs.c.execution_id == bindparam("execution_id")
    ),
)
CLOSE_RUN = Statement(
    "close_run",
    lambda d: (
        update(runs)
        .where(runs.c.run_id == bindparam("run_id"), one_of(runs.c.status, "active", d))
        .values(status=ExecutionStatus.CANCELLED.value, completed_at=_now(runs.c.completed_at))
    ),
)
NEW_RUN = Statement(
    "new_run",
    lambda _d: runs.insert().values(
        run_id=bindparam("run_id"),
        execution_id=bindparam("execution_id"),
        run_index=bindparam("run_index"),
        payload=bindparam("payload", type_=runs.c.payload.type),
        status=ExecutionStatus.SCHEDULED.value,
        trigger=bindparam("trigger"),
        triggered_by=bindparam("triggered_by"),
        started_at=_now(runs.c.started_at),
    ),
)
COPY_STEP = Statement(
    "copy_step",
    lambda _d: (
        steps.insert()
        .from_select(
            ["run_id", *_STEP_COPIED],
            select(
                bindparam("run_id", type_=steps.c.run_id.type),
                *(steps.c[c] for c in _STEP_COPIED),
            ).where(steps.c.step_id == bindparam("step_id")),
        )
        .returning(steps.c.step_id)
    ),
)
COPY_ATTEMPTS = Statement(
    "copy_attempts",
    lambda _d: attempts.insert().from_select(
        ["step_id", *_ATTEMPT_COPIED],
        select(
            bindparam("new_step_id", type_=attempts.c.step_id.type),
            *(attempts.c[c] for c in _ATTEMPT_COPIED),
        ).where(attempts.c.step_id == bindparam("step_id")),
    ),
)
OFFER_EVENTS_AGAIN = Statement(
    "offer_events_again",
    lambda d: (
        update(events)
        .where(
            events.c.execution_id == bindparam("execution_id"),
            events.c.consumed_at.is_not(None),
            ~one_of(events.c.name, "kept", d),
        )
        .values(consumed_at=None)
    ),
)
START_RUN = Statement(
    "start_new_run",
    lambda _d: (
        update(executions)
        .where(_execution())
        .values(
            _reopened(
                current_run_id=bindparam("run_id"),
                run_count=executions.c.run_count + 1,
                payload=bindparam("payload", type_=executions.c.payload.type),
            )
        )
    ),
)


def lock_execution_record(backend: Backend, execution_id: str) -> Operation[ExecutionRecord | None]:
    """The execution, its row locked for the rest of the transaction (``None``: unknown)."""
    yield LOCK, {"execution_id": execution_id}
    return (yield from get_execution(backend, execution_id))


def retry_failed_step(
    backend: Backend,
    execution: ExecutionRecord,
    step: StepRecord,
    *,
    deadline_at: datetime | None,
    now: datetime,
) -> Operation[RetriedStep]:
    """Turn the failed ``step`` of the current run back into a pending one and make the
    execution claimable: the next claim replays the run, returns every other recorded outcome
    from the store and runs ``step`` once more (its attempt history and numbering go on).

    The step's global timeout window starts afresh; the run row is reopened too. A failed
    event wait (a payload its model refused, or a timeout) waits again, without a deadline,
    for a new event of its name: the old event is removed.
    """
    yield RETRY_STEP, {"step_id": step.step_id, "now": now}
    if step.kind is StepKind.EVENT:  # the wait takes the next event of its name
        yield from events_repo.forget_event(backend, execution.execution_id, step.name)
    yield REOPEN_RUN, {"run_id": execution.run_id}
    yield REOPEN, {"execution_id": execution.execution_id, "deadline_at": deadline_at, "now": now}
    return RetriedStep(execution.execution_id, execution.run_id, step.name, step.attempts)


def start_new_run(
    backend: Backend,
    execution: ExecutionRecord,
    *,
    trigger: RunTrigger,
    payload: Any,
    triggered_by: str | None,
    preserved: Sequence[StepRecord],
    deadline_at: datetime | None,
    now: datetime,
) -> Operation[RunRecord]:
    """Append a run to the execution's history and make it the current, claimable one.

    The current run is closed (``cancelled`` if it had not ended; a finished run keeps its
    outcome). The ``preserved`` steps of the old run are copied into the new run with their
    attempts, so its replay returns their stored outcomes; events the old run consumed in
    waits that are not preserved are offered to the new run again.
    """
    execution_id = execution.execution_id
    last = yield LAST_RUN_INDEX, {"execution_id": execution_id}
    run_index = int(last[0]["last"] or 0) + 1 if last else 1
    run_id = str(uuid.uuid4())
    yield CLOSE_RUN, {"run_id": execution.run_id, "active": ACTIVE_VALUES, "now": now}
    yield (
        NEW_RUN,
        {
            "run_id": run_id,
            "execution_id": execution_id,
            "run_index": run_index,
            "payload": payload,
            "trigger": trigger.value,
            "triggered_by": triggered_by,
            "now": now,
        },
    )
    for step in preserved:  # each step with its attempts, from the rows themselves
        copied = yield COPY_STEP, {"run_id": run_id, "step_id": step.step_id}
        yield COPY_ATTEMPTS, {"new_step_id": copied[0]["step_id"], "step_id": step.step_id}
    kept_events = [s.name for s in preserved if s.kind is StepKind.EVENT]
    yield OFFER_EVENTS_AGAIN, {"execution_id": execution_id, "kept": kept_events}
    yield (
        START_RUN,
        {
            "execution_id": execution_id,
            "run_id": run_id,
            "payload": payload,
            "deadline_at": deadline_at,
            "now": now,
        },
    )
    found = [
        r for r in (yield from runs_repo.list_runs(backend, execution_id)) if r.run_id == run_id
    ]
    return found[0]
