"""Frozen records from rows: one builder per record, whatever connection read the row (an
SQLAlchemy row mapping, an asyncpg record, a mapping made from a sqlite3 tuple).

The two built all the time (an execution per claim, a step per stored outcome) name their
fields one by one; the others are built by field name from the dataclass, with the columns
that differ in name or type given."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from zart.models import (
    AttemptStatus,
    CatchupPolicy,
    ExecutionStatus,
    OverlapPolicy,
    RunTrigger,
    StepKind,
    StepStatus,
    TimerKind,
)
from zart.repositories.records import (
    EventRecord,
    ExecutionRecord,
    PauseRuleRecord,
    RunRecord,
    ScheduleFiring,
    ScheduleRecord,
    StepAttemptRecord,
    StepRecord,
    TimerRecord,
    WorkerRecord,
)

R = TypeVar("R")


def execution(m: Mapping[str, Any]) -> ExecutionRecord:
    return ExecutionRecord(
        execution_id=m["execution_id"],
        task_name=m["task_name"],
        status=ExecutionStatus(m["status"]),
        payload=m["payload"],
        result=m["result"],
        error=m["error"],
        run_id=m["current_run_id"],
        run_count=m["run_count"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        completed_at=m["completed_at"],
        deadline_at=m["deadline_at"],
        claimable_at=m["claimable_at"],
        lease_owner=m["lease_owner"],
        claim_count=m["claim_count"],
        version=m["version"],
        # .get: statements that return only some columns still build a record.
        fire_time=m.get("fire_time"),
        compensation_id=m.get("compensation_id"),
        compensates=m.get("compensates"),
        tags=m.get("tags") or {},
        crashed_claims=m.get("crashed_claims", 0),
        trace_context=m.get("trace_context"),
        queue=m.get("queue_name") or "default",
        partition_key=m.get("partition_key"),
        priority=m.get("priority") or 0,
        parent_execution_id=m.get("parent_execution_id"),
    )


def step(m: Mapping[str, Any]) -> StepRecord:
    return StepRecord(
        step_id=m["step_id"],
        run_id=m["run_id"],
        execution_id=m["execution_id"],
        name=m["name"],
        kind=StepKind(m["kind"]),
        status=StepStatus(m["status"]),
        result=m["result"],
        error=m["error"],
        attempts=m["attempts"],
        position=m["position"],
        deadline_at=m["deadline_at"],
        wake_at=m["wake_at"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        completed_at=m["completed_at"],
        branch=m.get("branch"),
    )


def _builder(
    cls: type[R], columns: Mapping[str, str] | None = None, **convert: Callable[[Any], Any]
) -> Callable[[Mapping[str, Any]], R]:
    """A builder of ``cls`` from a row: each field from the column of its name (or
    ``columns[field]``), passed through ``convert[field]`` when given."""
    plan = [
        (f.name, (columns or {}).get(f.name, f.name), convert.get(f.name))
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
    ]

    def build(m: Mapping[str, Any]) -> R:
        return cls(
            **{name: m[column] if to is None else to(m[column]) for name, column, to in plan}
        )

    return build


attempt = _builder(StepAttemptRecord, status=AttemptStatus)
run = _builder(RunRecord, status=ExecutionStatus, trigger=RunTrigger)
timer = _builder(TimerRecord, kind=TimerKind)
event = _builder(EventRecord)
worker = _builder(WorkerRecord, task_names=tuple)
pause_rule = _builder(PauseRuleRecord)
firing = _builder(ScheduleFiring)
schedule = _builder(
    ScheduleRecord,
    {"overlap": "overlap_policy", "catchup": "catchup_policy"},
    overlap=OverlapPolicy,
    catchup=CatchupPolicy,
    paused=bool,
)
