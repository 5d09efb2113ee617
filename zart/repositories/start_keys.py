"""Singleton and debounced starts (``start(..., singleton_key=)``, ``start(..., debounce=,
debounce_key=)``; ``docs/queues.md``), exact under concurrent starters by two partial unique
indexes on ``zart_executions`` (revision 0013):

- ``ux_zart_executions_singleton`` (task, singleton key) over unfinished executions: a second
  insert with a key held conflicts and inserts nothing (``ON CONFLICT DO NOTHING``); the start
  then returns the execution holding the key.
- ``ux_zart_executions_debounce`` (task, debounce key) over executions never claimed yet: a
  start first moves the pending one (its payload, and its claimable time to the end of the new
  window) with one ``UPDATE`` whose ``WHERE`` re-checks "never claimed" under the row lock, so
  a claim and a debounce never both win; with none pending it inserts, and an insert that
  loses a race to another starter's conflicts and goes round to the update again.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, or_, update

from zart.errors import ExecutionAlreadyExists
from zart.models import ExecutionRow, ExecutionStatus, RunRow, table_of
from zart.repositories import rows, wakeups
from zart.repositories.executions import (
    ACTIVE,
    CREATE_KEYED,
    CREATE_RUN,
    GET,
    existing_start,
    first_claim,
)
from zart.repositories.executors import Backend, Operation
from zart.repositories.records import CreatedExecution
from zart.repositories.statements import Statement

executions = table_of(ExecutionRow)
run_rows = table_of(RunRow)

#: How many times a start goes round when the row it conflicted with is gone by the time it
#: looks (finished, or claimed, meanwhile): each round needs another starter or a claim to win
#: a race in between, so a few suffice.
ROUNDS = 8

DEBOUNCE = Statement(
    "debounce_execution",
    lambda _d: (
        update(executions)
        .where(
            executions.c.task_name == bindparam("task_name"),
            executions.c.debounce_key == bindparam("debounce_key"),
            executions.c.status == ExecutionStatus.SCHEDULED.value,
            executions.c.claim_count == 0,
        )
        .values(
            payload=bindparam("payload", type_=executions.c.payload.type),
            claimable_at=bindparam("claimable_at", type_=executions.c.claimable_at.type),
            updated_at=bindparam("now", type_=executions.c.updated_at.type),
            version=executions.c.version + 1,
        )
        .returning(*executions.c)
    ),
)
DEBOUNCE_RUN = Statement(
    "debounce_run",
    lambda _d: (
        update(run_rows)
        .where(run_rows.c.run_id == bindparam("run_id"))
        .values(payload=bindparam("payload", type_=run_rows.c.payload.type))
    ),
)
SINGLETON_HOLDER = Statement(
    "singleton_holder",
    lambda _d: executions.select().where(
        executions.c.task_name == bindparam("task_name"),
        executions.c.singleton_key == bindparam("singleton_key"),
        # One comparison each: the statement compiles without expanding IN.
        or_(*(executions.c.status == s.value for s in ACTIVE)),
    ),
)


def create_keyed_execution(
    backend: Backend,
    *,
    execution_id: str,
    task_name: str,
    payload: Any,
    now: datetime,
    claimable_at: datetime,
    singleton_key: str | None = None,
    debounce_key: str | None = None,
    deadline_at: datetime | None = None,
    channel: str | None = None,
    tags: dict[str, str] | None = None,
    trace_context: dict[str, str] | None = None,
    queue: str = "default",
    partition_key: str | None = None,
    priority: int = 0,
) -> Operation[CreatedExecution]:
    """Start a singleton (``singleton_key``) or debounced (``debounce_key``, claimable from
    ``claimable_at``, the end of its window) execution; ``created=False`` when the start
    joined an existing one (the singleton holding the key, or the pending debounced execution,
    which now carries this ``payload`` and waits until ``claimable_at``).

    A start with an ``execution_id`` that exists is idempotent as in
    :func:`~.executions.create_execution` (checked before the key)."""
    params = {
        "execution_id": execution_id,
        "task_name": task_name,
        "payload": payload,
        "run_id": str(uuid.uuid4()),
        "deadline_at": deadline_at,
        "compensates": None,
        "tags": tags or None,
        "trace_context": trace_context or None,
        "queue_name": queue,
        "partition_key": partition_key,
        "priority": priority,
        "singleton_key": singleton_key,
        "debounce_key": debounce_key,
        "now": now,
        **first_claim(None, claimable_at),
    }
    for _ in range(ROUNDS):
        if debounce_key is not None:
            moved = yield DEBOUNCE, params
            if moved:
                yield DEBOUNCE_RUN, {"run_id": moved[0]["current_run_id"], "payload": payload}
                return CreatedExecution(rows.execution(moved[0]), created=False)
        found = yield CREATE_KEYED, params
        if found:
            if not backend.modifying_ctes:
                yield CREATE_RUN, params
            if channel is not None:  # sent at commit: the caller's, with session=
                yield from wakeups.notify(backend, channel, task_name)
            return CreatedExecution(rows.execution(found[0]), created=True)
        same_id = yield GET, {"execution_id": execution_id}
        if same_id:
            existing = rows.execution(same_id[0])
            return existing_start(existing, execution_id, task_name, payload, tags or {})
        if singleton_key is not None:
            holder = yield SINGLETON_HOLDER, params
            if holder:
                return CreatedExecution(rows.execution(holder[0]), created=False)
        # The row it conflicted with finished, or was claimed, meanwhile: once more.
    raise ExecutionAlreadyExists(  # pragma: no cover - needs ROUNDS lost races in a row
        execution_id, "unknown", f"its key kept changing hands over {ROUNDS} tries"
    )
