"""What ``--json`` prints: camelCase documents in the HTTP API's shapes (DESIGN section 4).

``Execution``, ``Run`` and ``Step`` carry the HTTP API's keys where the two overlap, plus a few
keys of our own that a script needs (an execution's ``error``, ``runId``, ``runCount``). Keys
are an API: add, never rename.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from zart.models import ExecutionStatus
from zart.repositories.records import (
    ExecutionDetail,
    ExecutionPage,
    ExecutionRecord,
    RunRecord,
    StepAttemptRecord,
    StepDetail,
)

__all__ = ["detail_json", "dumps", "execution_json", "page_json", "stats_json"]


def dumps(document: Any) -> str:
    """One JSON document, keys in the order built, non-ASCII text kept as is."""
    return json.dumps(document, ensure_ascii=False, indent=2)


def execution_json(record: ExecutionRecord) -> dict[str, Any]:
    return {
        "name": record.task_name,
        "durableExecutionId": record.execution_id,
        "payload": record.payload,
        "status": record.status.value,
        "scheduledAt": _time(record.created_at),
        "completedAt": _time(record.completed_at),
        "version": record.version,
        "result": record.result,
        "error": record.error,
        "runId": record.run_id,
        "runCount": record.run_count,
        "updatedAt": _time(record.updated_at),
    }


def page_json(page: ExecutionPage, *, limit: int, offset: int) -> dict[str, Any]:
    return {
        "items": [execution_json(record) for record in page.items],
        "total": page.total,
        "limit": limit,
        "offset": offset,
    }


def detail_json(detail: ExecutionDetail) -> dict[str, Any]:
    """The admin API's ``{execution, runs[], steps[]}`` (plus ``runId``: the run shown)."""
    return {
        "execution": execution_json(detail.execution),
        "runs": [_run_json(run) for run in detail.runs],
        "runId": detail.run_id,
        "steps": [_step_json(item) for item in detail.steps],
    }


def stats_json(counts: dict[ExecutionStatus, int]) -> dict[str, int]:
    return {status.value: counts.get(status, 0) for status in ExecutionStatus}


def _run_json(run: RunRecord) -> dict[str, Any]:
    return {
        "runId": run.run_id,
        "executionId": run.execution_id,
        "runIndex": run.run_index,
        "payload": run.payload,
        "status": run.status.value,
        "result": run.result,
        "error": run.error,
        "startedAt": _time(run.started_at),
        "completedAt": _time(run.completed_at),
        "trigger": run.trigger.value,
        "triggeredBy": run.triggered_by,
    }


def _step_json(item: StepDetail) -> dict[str, Any]:
    step = item.step
    return {
        "stepId": step.step_id,
        "name": step.name,
        "kind": step.kind.value,
        "status": step.status.value,
        # the number of the latest attempt: 0 for a step that succeeded on its first try
        "retryAttempt": max(step.attempts - 1, 0),
        "result": step.result,
        "lastError": step.error,
        "scheduledAt": _time(step.created_at),
        "completedAt": _time(step.completed_at),
        "wakeAt": _time(step.wake_at),
        "attempts": [_attempt_json(attempt) for attempt in item.attempts],
    }


def _attempt_json(attempt: StepAttemptRecord) -> dict[str, Any]:
    return {
        "attemptNumber": attempt.attempt_number,
        "status": attempt.status.value,
        "result": attempt.result,
        "error": attempt.error,
        "startedAt": _time(attempt.started_at),
        "completedAt": _time(attempt.completed_at),
    }


def _time(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()
