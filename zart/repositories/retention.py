"""Retention: deleting finished executions in batches (``prune_finished``) and counting what
would go (``count_prunable``). Every other row of an execution goes with it through the
foreign keys (``ON DELETE CASCADE``). The loop over batches is :func:`zart.worker.pruning.prune`.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select

from zart.models import ExecutionRow, ExecutionStatus, table_of
from zart.repositories.executors import Backend, Operation, reads
from zart.repositories.statements import Statement, one_of

executions = table_of(ExecutionRow)


FINISHED = tuple(s for s in ExecutionStatus if s.is_terminal)


def _prunable(dialect: str, *, by_task: bool, except_tasks: bool, batch: bool) -> Any:
    """The finished executions (in ``:statuses``) that finished before ``:before``; of task
    ``:task_name`` (``by_task``), or of none of the tasks in ``:except_tasks`` (those have a
    retention of their own). With ``batch``: the ``:limit`` oldest, and on PostgreSQL rows
    another pruner has locked are skipped, so two pruners never wait on, nor delete, the same
    rows (on SQLite the single write lock orders them)."""
    conditions = [
        one_of(executions.c.status, "statuses", dialect),
        executions.c.completed_at < bindparam("before", type_=executions.c.completed_at.type),
    ]
    if by_task:
        conditions.append(executions.c.task_name == bindparam("task_name"))
    if except_tasks:
        conditions.append(~one_of(executions.c.task_name, "except_tasks", dialect))
    found = select(executions.c.execution_id).where(*conditions)
    if not batch:
        return found
    found = found.order_by(executions.c.completed_at).limit(bindparam("limit"))
    return found.with_for_update(skip_locked=True) if dialect == "postgresql" else found


def _prune(by_task: bool, except_tasks: bool) -> Statement:
    def build(dialect: str) -> Any:
        doomed = _prunable(dialect, by_task=by_task, except_tasks=except_tasks, batch=True)
        return (
            executions.delete()
            .where(executions.c.execution_id.in_(doomed.scalar_subquery()))
            .returning(executions.c.execution_id)
        )

    return Statement(f"prune_executions_{int(by_task)}{int(except_tasks)}", build)


def _count_prunable(by_task: bool, except_tasks: bool) -> Statement:
    def build(dialect: str) -> Any:
        doomed = _prunable(dialect, by_task=by_task, except_tasks=except_tasks, batch=False)
        return select(func.count().label("total")).select_from(doomed.subquery())

    return Statement(f"count_prunable_{int(by_task)}{int(except_tasks)}", build)


_VARIANTS = [(by_task, except_tasks) for by_task in (False, True) for except_tasks in (False, True)]
PRUNE = {variant: _prune(*variant) for variant in _VARIANTS}
COUNT_PRUNABLE = {variant: _count_prunable(*variant) for variant in _VARIANTS}


def _prune_params(
    before: datetime,
    statuses: Collection[ExecutionStatus],
    task_name: str | None,
    except_tasks: Collection[str],
    limit: int | None,
) -> tuple[tuple[bool, bool], dict[str, Any]]:
    variant = (task_name is not None, bool(except_tasks))
    params = {
        "before": before,
        "statuses": [s.value for s in statuses],
        "task_name": task_name,
        "except_tasks": sorted(except_tasks),
        "limit": limit,
    }
    return variant, params


def prune_finished(
    backend: Backend,
    *,
    before: datetime,
    statuses: Collection[ExecutionStatus] = FINISHED,
    task_name: str | None = None,
    except_tasks: Collection[str] = (),
    limit: int = 100,
) -> Operation[list[str]]:
    """Delete up to ``limit`` finished executions (in ``statuses``) that finished before
    ``before``, oldest first, with all their rows (runs, steps, attempts, timers, events,
    published values and stream items go with them: ``ON DELETE CASCADE``); their ids. Only
    ``task_name``'s, or none of ``except_tasks``'."""
    variant, params = _prune_params(before, statuses, task_name, except_tasks, limit)
    found = yield PRUNE[variant], params
    return [row["execution_id"] for row in found]


@reads
def count_prunable(
    backend: Backend,
    *,
    before: datetime,
    statuses: Collection[ExecutionStatus] = FINISHED,
    task_name: str | None = None,
    except_tasks: Collection[str] = (),
) -> Operation[int]:
    """How many executions :func:`prune_finished` would delete, all batches together."""
    variant, params = _prune_params(before, statuses, task_name, except_tasks, None)
    found = yield COUNT_PRUNABLE[variant], params
    return int(found[0]["total"] or 0)
