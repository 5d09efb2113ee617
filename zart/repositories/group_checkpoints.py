"""Group commit's checkpoints: several checkpoints of different executions in one statement
(PostgreSQL) or one transaction (SQLite), each fenced by its own lease exactly as
:func:`zart.repositories.steps.record_step_outcome` fences one. The batcher
(:mod:`zart.runtime.checkpoints`) sends a group here whenever checkpoints arrive while one is
being written.

The items go as **one** JSON array of arrays (:func:`_group_item`), read back with
``jsonb_array_elements``: an array parameter per column cost the driver a check and an encode
per cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, String, and_, bindparam, cast, func, literal_column, select
from sqlalchemy.dialects.postgresql import JSONB

from zart.errors import LeaseLost, NonDeterministicReplay
from zart.repositories.executors import Backend, Operation, autocommit
from zart.repositories.records import AttemptOutcome, Lease, StepRecord
from zart.repositories.statements import Statement, upsert
from zart.repositories.steps import (
    ATTEMPT_COLUMNS,
    STEP_COLUMNS,
    Checkpoint,
    StepOutcome,
    attempts,
    executions,
    in_step_row,
    record_checkpoint,
    refusal,
    steps,
    upserted,
    written_record,
)

_GROUP_COLUMNS = (
    "lease_execution_id",
    "lease_token",
    *STEP_COLUMNS,
    "has_attempt",
    *(f"a_{c}" for c in ATTEMPT_COLUMNS),
)

#: The fields of one group checkpoint item, in order (:func:`_group_item`): the step's
#: columns but ``updated_at`` (the group's ``now``), then its attempt's.
_ITEM_FIELDS = tuple(c for c in _GROUP_COLUMNS if c != "updated_at")
#: The JSON columns among them: taken as JSONB (a JSON null stays JSON null), not as text.
_JSON_FIELDS = frozenset({"result", "error", "event_schema", "a_result", "a_error"})


def _group_checkpoint(_dialect: str) -> Any:
    """Several checkpoints in one statement (PostgreSQL): the items one JSON array of arrays
    (:func:`_group_item`: one parameter, encoded at once, where an array parameter per column
    cost the driver a check and an encode per cell), each item fenced by its own lease, the
    execution rows locked ``FOR SHARE`` in ``execution_id`` order."""

    def column_type(name: str) -> Any:
        if name in ("lease_execution_id", "lease_token"):
            return String()
        if name == "has_attempt":
            return Boolean()
        if name.startswith("a_"):
            return attempts.c[name[2:]].type
        return steps.c[name].type

    item = func.jsonb_array_elements(bindparam("g_items", type_=JSONB), type_=JSONB)
    element = item.column_valued("item")
    now = bindparam("now", type_=steps.c.created_at.type)

    def field(index: int, name: str) -> Any:
        at: Any = literal_column(str(index))  # a literal, not one more parameter per field
        if name in _JSON_FIELDS:
            return element.op("->", return_type=JSONB)(at)
        return cast(element.op("->>", return_type=String())(at), column_type(name))

    fields = {name: field(index, name) for index, name in enumerate(_ITEM_FIELDS)}
    fields["updated_at"] = now
    items = select(*(fields[name].label(name) for name in _GROUP_COLUMNS)).cte("items")
    held = (
        select(executions.c.execution_id)
        .join(
            items,
            and_(
                executions.c.execution_id == items.c.lease_execution_id,
                executions.c.lease_token == items.c.lease_token,
            ),
        )
        .order_by(executions.c.execution_id)
        .with_for_update(read=True, of=executions)
        .cte("held")
    )
    source = select(*(items.c[c] for c in STEP_COLUMNS), items.c.lease_execution_id).where(
        items.c.lease_execution_id.in_(select(held.c.execution_id))
    )
    written = upserted(upsert(steps, "postgresql"), source).returning(*steps.c).cte("written")
    attempt = (
        attempts.insert()
        .from_select(
            ["step_id", *ATTEMPT_COLUMNS],
            select(written.c.step_id, *(items.c[f"a_{c}"] for c in ATTEMPT_COLUMNS))
            .select_from(
                written.join(
                    items,
                    and_(items.c.run_id == written.c.run_id, items.c.name == written.c.name),
                )
            )
            .where(items.c.has_attempt),
        )
        .returning(attempts.c.attempt_id)
        .cte("attempt")
    )
    kept = ("step_id", "run_id", "name", "position", "created_at")
    return select(*(written.c[name] for name in kept)).add_cte(attempt)


GROUP_CHECKPOINT = Statement("group_checkpoint", _group_checkpoint)


@autocommit
def record_step_outcomes(
    backend: Backend, items: Sequence[Checkpoint], *, now: datetime
) -> Operation[list[StepRecord | LeaseLost | NonDeterministicReplay]]:
    """Several checkpoints of different executions at once (group commit), each fenced by its
    own lease exactly as :func:`record_step_outcome` fences one, the refused ones writing
    nothing. Per item, in order: its stored record, or the error it gets.

    PostgreSQL: **one** statement; the execution rows are locked ``FOR SHARE`` in
    ``execution_id`` order, as the heartbeat locks them (:func:`.leases.renew_leases`), so two
    statements that lock several rows never wait for each other in a cycle. SQLite: one
    checkpoint after the other in the one transaction (one commit, one fsync)."""
    results: list[StepRecord | LeaseLost | NonDeterministicReplay] = []
    if not backend.group_statements:
        for item in items:
            try:
                results.append((yield from record_checkpoint(backend, item, now=now)))
            except (LeaseLost, NonDeterministicReplay) as refused:  # no database error: go on
                results.append(refused)
        return results
    found = yield (
        GROUP_CHECKPOINT,
        {"g_items": [_group_item(*item, now=now) for item in items], "now": now},
    )
    stored = {(row["run_id"], row["name"]): row for row in found}
    for lease, outcome, _attempt in items:
        row = stored.get((outcome.run_id, outcome.name))
        if row is None:
            results.append((yield from refusal(lease, outcome)))
        else:
            results.append(written_record(row, lease, outcome, now))
    return results


def _stamp(value: datetime | None) -> str | None:
    """A timestamp as the JSON text PostgreSQL reads back exactly (ISO 8601 with its offset)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r} given to a UTC column; attach a timezone")
    return value.isoformat()


def _group_item(
    lease: Lease, outcome: StepOutcome, attempt: AttemptOutcome | None, *, now: datetime
) -> list[Any]:
    """One checkpoint of a group statement: its :data:`_ITEM_FIELDS`, in order, as JSON. As
    alone (:func:`record_step_outcome`): ``created_at`` is the attempt's start, and a first
    try that succeeded is in the step row only (:func:`in_step_row`)."""
    item = [
        lease.execution_id,
        lease.token,
        outcome.run_id,
        outcome.name,
        outcome.kind,
        outcome.status,
        outcome.result,
        outcome.error,
        outcome.attempts,
        outcome.position,
        _stamp(outcome.deadline_at),
        _stamp(outcome.wake_at),
        _stamp(now if attempt is None else attempt.started_at),
        _stamp(outcome.completed_at),
        outcome.event_schema,
        outcome.branch,
    ]
    if attempt is None or in_step_row(outcome, attempt):
        item += (False, 0, "", None, None, None, None)
    else:
        item += (
            True,
            attempt.attempt_number,
            attempt.status,
            attempt.result,
            attempt.error,
            _stamp(attempt.started_at),
            _stamp(attempt.completed_at),
        )
    return item
