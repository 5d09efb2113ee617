"""Executions held because their replay left the recorded history (safe deploys,
``docs/versioning.md``): the hold, the verdict an operator reads, and failing one.

A divergence holds its execution with the pause machinery: an active pause rule on the
execution alone (every step), ``triggered_by`` :data:`REPLAY`, its ``reason`` the verdict,
and a hold timer on it. So the hold is listed with the other pause rules, survives restarts,
and removing the rule (``resume_diverged``) wakes the execution to replay again.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update

from zart.models import ExecutionRow, ExecutionStatus, PauseRuleRow, table_of
from zart.repositories import pause_rules, rows, runs
from zart.repositories.executions import leaving_worker
from zart.repositories.executors import Backend, Operation, reads
from zart.repositories.records import ExecutionRecord, PauseRuleRecord
from zart.repositories.statements import Statement

rules = table_of(PauseRuleRow)
executions = table_of(ExecutionRow)

#: The ``triggered_by`` of a divergence's pause rule.
REPLAY = "zart:replay"
#: Longest verdict stored (the rule's ``reason`` column).
REASON_LENGTH = 1024

ACTIVE_HOLD = Statement(
    "active_divergence_hold",
    lambda _d: (
        select(rules)
        .where(
            rules.c.execution_id == bindparam("execution_id"),
            rules.c.triggered_by == REPLAY,
            *pause_rules.active_conditions(),
        )
        .order_by(rules.c.created_at, rules.c.rule_id)
        .limit(1)
    ),
)


def _fail_held(_dialect: str) -> Any:
    now = bindparam("now", type_=executions.c.updated_at.type)
    return (
        update(executions)
        .where(
            executions.c.execution_id == bindparam("execution_id"),
            executions.c.status == ExecutionStatus.WAITING.value,
        )
        .values(
            leaving_worker(
                ExecutionStatus.FAILED.value,
                error=bindparam("error", type_=executions.c.error.type),
                claimable_at=None,
                completed_at=now,
            )
        )
        .returning(*executions.c)
    )


FAIL_HELD = Statement("fail_diverged_execution", _fail_held)


@reads
def divergence_of(
    backend: Backend, execution_id: str, *, now: datetime
) -> Operation[PauseRuleRecord | None]:
    """The active divergence hold of ``execution_id`` (its ``reason`` is the verdict)."""
    found = yield ACTIVE_HOLD, {"execution_id": execution_id, "now": now}
    return rows.pause_rule(found[0]) if found else None


def hold_diverged(
    backend: Backend,
    *,
    execution_id: str,
    run_id: str,
    reason: str,
    fire_at: datetime,
    now: datetime,
) -> Operation[PauseRuleRecord]:
    """Hold the run on its divergence rule (made now, or the one an earlier pass made) until
    ``fire_at``; the caller then suspends the run."""
    rule = yield from divergence_of(backend, execution_id, now=now)
    if rule is None:
        rule = yield from pause_rules.create_rule(
            backend,
            rule_id=str(uuid.uuid4()),
            execution_id=execution_id,
            task_name=None,
            step_pattern=None,
            reason=reason[:REASON_LENGTH],
            triggered_by=REPLAY,
            expires_at=None,
            now=now,
        )
    yield from pause_rules.hold_execution(
        backend,
        rule_id=rule.rule_id,
        execution_id=execution_id,
        run_id=run_id,
        fire_at=fire_at,
        now=now,
    )
    return rule


def fail_diverged(
    backend: Backend, execution_id: str, *, now: datetime, failed_by: str | None
) -> Operation[ExecutionRecord | None]:
    """Fail an execution its divergence holds (waiting): its error names the verdict, the
    hold's rule is removed. ``None`` (nothing changed) when no divergence holds it, or it is
    not waiting (a worker is replaying it now: try again)."""
    rule = yield from divergence_of(backend, execution_id, now=now)
    if rule is None:
        return None
    error = {"kind": "non_deterministic_replay", "message": rule.reason or "replay diverged"}
    found = yield FAIL_HELD, {"execution_id": execution_id, "error": error, "now": now}
    if not found:
        return None
    record = rows.execution(found[0])
    yield from runs.end_run(backend, record.run_id, ExecutionStatus.FAILED, error=error, now=now)
    yield from pause_rules.remove_rule(backend, rule.rule_id, now=now, removed_by=failed_by)
    return record
