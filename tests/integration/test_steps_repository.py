"""Step outcomes, attempts, events, timers and workers against real databases."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import String, func, select

from tests.factories import (
    LEASE,
    T0,
    claim_only,
    completed_step,
    new_execution,
    retrying_step,
    run_on,
)
from zart.errors import (
    EventAlreadyDelivered,
    EventNotAccepted,
    ExecutionNotFound,
    LeaseLost,
    NonDeterministicReplay,
)
from zart.models import (
    AttemptStatus,
    ExecutionStatus,
    StepAttemptRow,
    StepKind,
    StepRow,
    StepStatus,
    TimerKind,
    table_of,
)
from zart.repositories import events, executions, steps, timers, workers
from zart.repositories import leases as leases_repo
from zart.repositories.records import AttemptOutcome, Lease
from zart.repositories.store import Store


async def _count(store: Store, model: type[StepRow] | type[StepAttemptRow]) -> int:
    async with store.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table_of(model))) or 0)


async def test_outcomes_round_trip_and_load_in_one_query(store: Store) -> None:
    record = await new_execution(store)
    lease = await claim_only(store, record.execution_id)
    values = {"a": [1, 2.5, "x", None, True], "nested": {"k": "v"}}
    for position, (name, result) in enumerate([("one", values), ("two", None), ("three", "s")]):
        await run_on(
            store,
            steps.record_step_outcome,
            lease,
            completed_step(record.run_id, name, result, position),
            attempt=AttemptOutcome(0, AttemptStatus.SUCCEEDED, T0, T0, result=result),
            now=T0,
        )

    loaded = await run_on(store, steps.load_run_outcomes, record.run_id)

    assert set(loaded) == {"one", "two", "three"}
    assert loaded["one"].result == values
    assert loaded["two"].result is None
    assert loaded["three"].status is StepStatus.COMPLETED
    assert [s.name for s in await run_on(store, steps.list_steps, record.run_id)] == [
        "one",
        "two",
        "three",
    ]


async def test_retries_update_the_step_and_keep_every_attempt(store: Store) -> None:
    record = await new_execution(store)
    lease = await claim_only(store, record.execution_id)
    error = {"type": "builtins:TimeoutError", "message": "upstream slow"}

    failed = await run_on(
        store,
        steps.record_step_outcome,
        lease,
        retrying_step(record.run_id, "charge-card", error, T0 + timedelta(seconds=1)),
        attempt=AttemptOutcome(0, AttemptStatus.FAILED, T0, T0, error=error),
        now=T0,
    )
    later = T0 + timedelta(seconds=1)
    succeeded = await run_on(
        store,
        steps.record_step_outcome,
        lease,
        steps.StepOutcome(
            run_id=record.run_id,
            name="charge-card",
            kind=StepKind.STEP,
            status=StepStatus.COMPLETED,
            position=0,
            attempts=2,
            result={"charge": "ch_1"},
            completed_at=later,
        ),
        attempt=AttemptOutcome(1, AttemptStatus.SUCCEEDED, later, later, result={"charge": "ch_1"}),
        now=later,
    )

    assert succeeded.step_id == failed.step_id
    assert succeeded.status is StepStatus.COMPLETED
    assert succeeded.attempts == 2
    assert succeeded.error is None
    assert succeeded.created_at == T0
    attempts = (await run_on(store, steps.list_step_attempts, [succeeded]))[succeeded.step_id]
    assert [(a.attempt_number, a.status) for a in attempts] == [
        (0, AttemptStatus.FAILED),
        (1, AttemptStatus.SUCCEEDED),
    ]
    assert attempts[0].error == error


async def test_a_checkpoint_with_a_stale_lease_writes_nothing(store: Store) -> None:
    record = await new_execution(store)
    stale = await claim_only(store, record.execution_id, worker_id="worker-a")
    await claim_only(store, record.execution_id, worker_id="worker-b", now=T0 + LEASE, takeovers=1)
    steps_before = await _count(store, StepRow)
    attempts_before = await _count(store, StepAttemptRow)

    with pytest.raises(LeaseLost):
        await run_on(
            store,
            steps.record_step_outcome,
            stale,
            completed_step(record.run_id, "send-email", "sent"),
            attempt=AttemptOutcome(0, AttemptStatus.SUCCEEDED, T0, T0, result="sent"),
            now=T0 + LEASE,
        )

    assert await run_on(store, steps.load_run_outcomes, record.run_id) == {}
    assert await _count(store, StepRow) == steps_before
    assert await _count(store, StepAttemptRow) == attempts_before


async def test_suspend_wakes_at_the_earliest_pending_timer(store: Store) -> None:
    record = await new_execution(store)
    lease = await claim_only(store, record.execution_id)
    for name, delay in (("wait-24h", timedelta(hours=24)), ("retry-x", timedelta(minutes=5))):
        await run_on(
            store,
            timers.create_timer,
            execution_id=record.execution_id,
            run_id=record.run_id,
            name=name,
            kind=TimerKind.SLEEP,
            fire_at=T0 + delay,
            now=T0,
        )

    waiting = await run_on(
        store, leases_repo.suspend_execution, lease, run_id=record.run_id, now=T0
    )

    assert waiting.status is ExecutionStatus.WAITING
    assert waiting.lease_owner is None
    assert waiting.claimable_at == T0 + timedelta(minutes=5)
    fired = await run_on(
        store, timers.fire_due_timers, [record.run_id], now=T0 + timedelta(minutes=5)
    )
    assert fired == 1
    assert [t.name for t in await run_on(store, timers.pending_timers, record.run_id)] == [
        "wait-24h"
    ]


async def test_a_timer_created_while_waiting_brings_the_wake_up_forward(
    store: Store,
) -> None:
    record = await new_execution(store)
    lease = await claim_only(store, record.execution_id)
    await run_on(store, leases_repo.suspend_execution, lease, run_id=record.run_id, now=T0)

    await run_on(
        store,
        timers.create_timer,
        execution_id=record.execution_id,
        run_id=record.run_id,
        name="deadline",
        kind=TimerKind.EXECUTION_DEADLINE,
        fire_at=T0 + timedelta(hours=1),
        now=T0,
    )

    stored = await run_on(store, executions.get_execution, record.execution_id)
    assert stored is not None
    assert stored.claimable_at == T0 + timedelta(hours=1)


async def test_suspend_with_the_awaited_event_already_delivered_wakes_at_once(
    store: Store,
) -> None:
    record = await new_execution(store)
    lease = await claim_only(store, record.execution_id)
    await run_on(
        store,
        events.deliver_event,
        execution_id=record.execution_id,
        name="manager-approval",
        payload={"approved": True},
        now=T0,
    )

    waiting = await run_on(
        store,
        leases_repo.suspend_execution,
        lease,
        run_id=record.run_id,
        now=T0 + timedelta(seconds=1),
        awaited_events=["manager-approval"],
    )

    assert waiting.status is ExecutionStatus.WAITING
    assert waiting.claimable_at == T0 + timedelta(seconds=1)


async def _wait_for(store: Store, run_id: str, lease: Lease, name: str) -> None:
    """Record a wait for event ``name``, as the runtime does before suspending."""
    await run_on(
        store,
        steps.record_step_outcome,
        lease,
        steps.StepOutcome(
            run_id=run_id,
            name=name,
            kind=StepKind.EVENT,
            status=StepStatus.WAITING,
            position=0,
            attempts=0,
        ),
        now=T0,
    )


async def test_delivering_an_event_wakes_a_waiting_execution(store: Store) -> None:
    record = await new_execution(store)
    lease = await claim_only(store, record.execution_id)
    await _wait_for(store, record.run_id, lease, "approval")
    await run_on(
        store,
        leases_repo.suspend_execution,
        lease,
        run_id=record.run_id,
        now=T0,
        awaited_events=["approval"],
    )
    assert (await run_on(store, executions.get_execution, record.execution_id)).claimable_at is None  # type: ignore[union-attr]

    delivered = await run_on(
        store,
        events.deliver_event,
        execution_id=record.execution_id,
        name="approval",
        payload={"ok": 1},
        now=T0 + timedelta(minutes=1),
    )

    assert delivered.event.payload == {"ok": 1}
    assert delivered.woke
    assert delivered.task_name == "onboarding"
    stored = await run_on(store, executions.get_execution, record.execution_id)
    assert stored is not None
    assert stored.claimable_at == T0 + timedelta(minutes=1)
    consumed = await run_on(
        store,
        events.consume_event,
        record.execution_id,
        "approval",
        now=T0 + timedelta(minutes=2),
    )
    assert consumed is not None
    assert consumed.consumed_at == T0 + timedelta(minutes=2)


async def test_an_event_nobody_waits_for_is_kept_and_wakes_nothing(
    store: Store,
) -> None:
    record = await new_execution(store)
    lease = await claim_only(store, record.execution_id)
    await _wait_for(store, record.run_id, lease, "approval")
    await run_on(
        store,
        leases_repo.suspend_execution,
        lease,
        run_id=record.run_id,
        now=T0,
        awaited_events=["approval"],
    )

    delivery = await run_on(
        store,
        events.deliver_event,
        execution_id=record.execution_id,
        name="unrelated",
        payload=1,
        now=T0,
    )

    assert delivery.woke is False
    stored = await run_on(store, executions.get_execution, record.execution_id)
    assert stored is not None
    assert stored.claimable_at is None
    assert await run_on(store, events.get_event, record.execution_id, "unrelated") is not None


async def test_an_event_for_a_running_execution_leaves_its_lease_alone(
    store: Store,
) -> None:
    record = await new_execution(store)
    lease = await claim_only(store, record.execution_id)

    await run_on(
        store,
        events.deliver_event,
        execution_id=record.execution_id,
        name="early",
        payload=1,
        now=T0,
    )

    stored = await run_on(store, executions.get_execution, record.execution_id)
    assert stored is not None
    assert stored.claimable_at == lease.expires_at
    assert (await run_on(store, events.get_event, record.execution_id, "early")) is not None


async def test_event_delivery_errors_store_nothing(store: Store) -> None:
    record = await new_execution(store)
    await run_on(
        store,
        events.deliver_event,
        execution_id=record.execution_id,
        name="once",
        payload=1,
        now=T0,
    )

    with pytest.raises(EventAlreadyDelivered):
        await run_on(
            store,
            events.deliver_event,
            execution_id=record.execution_id,
            name="once",
            payload=2,
            now=T0,
        )
    with pytest.raises(ExecutionNotFound):
        await run_on(
            store, events.deliver_event, execution_id="missing", name="once", payload=1, now=T0
        )
    await run_on(store, executions.cancel_execution, record.execution_id, now=T0)
    with pytest.raises(EventNotAccepted):
        await run_on(
            store,
            events.deliver_event,
            execution_id=record.execution_id,
            name="late",
            payload=1,
            now=T0,
        )

    stored = await run_on(store, events.get_event, record.execution_id, "once")
    assert stored is not None
    assert stored.payload == 1
    assert await run_on(store, events.get_event, record.execution_id, "late") is None


async def test_live_workers_advertise_their_task_names(store: Store) -> None:
    await run_on(
        store,
        workers.register_worker,
        worker_id="w-live",
        hostname="h",
        pid=1,
        task_names=["onboarding", "billing"],
        concurrency=4,
        now=T0,
    )
    await run_on(
        store,
        workers.register_worker,
        worker_id="w-stale",
        hostname="h",
        pid=2,
        task_names=["stale-task"],
        concurrency=4,
        now=T0 - timedelta(hours=1),
    )
    await run_on(
        store,
        workers.register_worker,
        worker_id="w-stopped",
        hostname="h",
        pid=3,
        task_names=["stopped-task"],
        concurrency=4,
        now=T0,
    )
    await run_on(store, workers.mark_worker_stopped, "w-stopped", now=T0)
    await run_on(store, workers.record_worker_heartbeat, "w-live", now=T0 + timedelta(seconds=20))

    live = await run_on(store, workers.live_task_names, seen_since=T0 + timedelta(seconds=10))

    assert {"onboarding", "billing"} <= live
    assert not {"stale-task", "stopped-task"} & live


async def test_a_completed_outcome_is_never_overwritten(store: Store) -> None:
    record = await new_execution(store)
    lease = await claim_only(store, record.execution_id)
    await run_on(
        store,
        steps.record_step_outcome,
        lease,
        completed_step(record.run_id, "charge", {"id": 1}),
        now=T0,
    )

    with pytest.raises(NonDeterministicReplay, match="never overwritten"):
        await run_on(
            store,
            steps.record_step_outcome,
            lease,
            completed_step(record.run_id, "charge", {"id": 2}),
            now=T0,
        )

    assert (await run_on(store, steps.load_run_outcomes, record.run_id))["charge"].result == {
        "id": 1
    }


async def test_a_refused_event_leaves_the_execution_untouched(store: Store) -> None:
    record = await new_execution(store)
    await run_on(
        store,
        events.deliver_event,
        execution_id=record.execution_id,
        name="once",
        payload=1,
        now=T0,
    )
    before = await run_on(store, executions.get_execution, record.execution_id)

    with pytest.raises(EventAlreadyDelivered):
        await run_on(
            store,
            events.deliver_event,
            execution_id=record.execution_id,
            name="once",
            payload=2,
            now=T0,
        )

    assert await run_on(store, executions.get_execution, record.execution_id) == before


# -- the common checkpoint: a first completed outcome with its succeeded attempt ---------------
# (PostgreSQL writes it with a statement of its own, FIRST_CHECKPOINT, that leaves anything
# unusual to the general one; the tests hold on both backends.)


def _succeeded(
    run_id: str, name: str, result: object, at: object = T0, attempt: int = 0
) -> dict[str, object]:
    """The arguments of the checkpoint a step's successful attempt number ``attempt`` makes."""
    return {
        "outcome": steps.StepOutcome(
            run_id=run_id,
            name=name,
            kind=StepKind.STEP,
            status=StepStatus.COMPLETED,
            position=0,
            attempts=attempt + 1,
            result=result,
            completed_at=at,  # type: ignore[arg-type]
        ),
        "attempt": AttemptOutcome(attempt, AttemptStatus.SUCCEEDED, T0, at),  # type: ignore[arg-type]
    }


async def _raw_rows(store: Store, run_id: str) -> list[tuple[object, ...]]:
    """Every column of a run's steps and their attempt rows as the database has them (JSON as
    text, so a JSON null and an SQL NULL differ), times and ids left out; a step with no
    attempt row has ``None`` and ``"<NULL>"`` in the attempt's four."""
    step_table, attempt_table = table_of(StepRow), table_of(StepAttemptRow)
    json_columns = ("result", "error", "event_schema")
    async with store.engine.connect() as conn:
        found = await conn.execute(
            select(
                step_table.c.name,
                step_table.c.kind,
                step_table.c.status,
                step_table.c.attempts,
                step_table.c.wake_at,
                step_table.c.branch,
                *(
                    func.coalesce(func.cast(step_table.c[c], String()), "<NULL>")
                    for c in json_columns
                ),
                attempt_table.c.attempt_number,
                attempt_table.c.status,
                func.coalesce(func.cast(attempt_table.c.result, String()), "<NULL>"),
                func.coalesce(func.cast(attempt_table.c.error, String()), "<NULL>"),
            )
            .outerjoin(attempt_table, attempt_table.c.step_id == step_table.c.step_id)
            .where(step_table.c.run_id == run_id)
            .order_by(step_table.c.name)
        )
        return [tuple(row) for row in found]


async def test_the_common_checkpoint_stores_what_the_general_one_stores(store: Store) -> None:
    record = await new_execution(store)
    lease = await claim_only(store, record.execution_id)
    later = T0 + timedelta(seconds=1)
    written_at = T0 + timedelta(seconds=2)
    common = _succeeded(record.run_id, "common", {"id": 1})
    # An attempt that ended later than the outcome says: only the general statement writes it.
    general = _succeeded(record.run_id, "general", {"id": 1})
    general["attempt"] = AttemptOutcome(0, AttemptStatus.SUCCEEDED, T0, later)

    written = await run_on(store, steps.record_step_outcome, lease, now=written_at, **common)  # type: ignore[arg-type]
    await run_on(store, steps.record_step_outcome, lease, now=written_at, **general)  # type: ignore[arg-type]

    first, second = await _raw_rows(store, record.run_id)
    assert (first[0], second[0]) == ("common", "general")
    assert first[1:-4] == second[1:-4]  # the step rows: JSON nulls, status, attempts alike
    # The first try is in the common step's row only; the general one wrote an attempt row.
    assert first[-4:] == (None, None, "<NULL>", "<NULL>")
    assert second[-4:-2] == (0, AttemptStatus.SUCCEEDED.value)
    assert (written.result, written.status) == ({"id": 1}, StepStatus.COMPLETED)
    loaded = await run_on(store, steps.load_run_outcomes, record.run_id)
    assert loaded["common"].result == {"id": 1}
    assert loaded["common"].completed_at == T0
    assert loaded["common"].error is None
    # Both began when their attempt did, not when the checkpoint was written.
    assert loaded["common"].created_at == loaded["general"].created_at == T0
    assert written.created_at == T0
    read = await run_on(store, steps.list_step_attempts, list(loaded.values()))
    (from_row,) = read[loaded["common"].step_id]
    (from_attempt,) = read[loaded["general"].step_id]
    assert from_row.attempt_id is None
    assert from_attempt.attempt_id is not None
    assert (from_row.started_at, from_row.completed_at) == (T0, T0)
    assert replace(from_row, attempt_id=None, step_id=0, completed_at=later) == replace(
        from_attempt, attempt_id=None, step_id=0
    )


async def test_a_retry_that_succeeds_replaces_the_unfinished_outcome(store: Store) -> None:
    record = await new_execution(store)
    lease = await claim_only(store, record.execution_id)
    waiting = await run_on(
        store,
        steps.record_step_outcome,
        lease,
        retrying_step(
            record.run_id,
            "charge",
            {"type": "builtins:TimeoutError", "message": "slow"},
            T0 + timedelta(seconds=5),
        ),
        attempt=AttemptOutcome(0, AttemptStatus.FAILED, T0, T0, error={"message": "slow"}),
        now=T0,
    )
    later = T0 + timedelta(seconds=6)
    retried = _succeeded(record.run_id, "charge", "ch_1", at=later, attempt=1)

    done = await run_on(store, steps.record_step_outcome, lease, now=later, **retried)  # type: ignore[arg-type]

    assert done.step_id == waiting.step_id
    loaded = (await run_on(store, steps.load_run_outcomes, record.run_id))["charge"]
    assert (loaded.status, loaded.result, loaded.error, loaded.wake_at) == (
        StepStatus.COMPLETED,
        "ch_1",
        None,
        None,
    )
    attempts = (await run_on(store, steps.list_step_attempts, [done]))[done.step_id]
    assert [a.status for a in attempts] == [AttemptStatus.FAILED, AttemptStatus.SUCCEEDED]


async def test_the_common_checkpoint_with_a_stale_lease_writes_nothing(store: Store) -> None:
    record = await new_execution(store)
    stale = await claim_only(store, record.execution_id, worker_id="worker-a")
    await claim_only(store, record.execution_id, worker_id="worker-b", now=T0 + LEASE, takeovers=1)

    with pytest.raises(LeaseLost):
        await run_on(
            store,
            steps.record_step_outcome,
            stale,
            now=T0 + LEASE,
            **_succeeded(record.run_id, "send", "sent"),  # type: ignore[arg-type]
        )

    assert await run_on(store, steps.load_run_outcomes, record.run_id) == {}
    assert await _count(store, StepAttemptRow) == 0


async def test_the_common_checkpoint_never_overwrites_a_completed_outcome(store: Store) -> None:
    record = await new_execution(store)
    lease = await claim_only(store, record.execution_id)
    await run_on(
        store, steps.record_step_outcome, lease, now=T0, **_succeeded(record.run_id, "charge", 1)
    )  # type: ignore[arg-type]

    with pytest.raises(NonDeterministicReplay, match="never overwritten"):
        await run_on(
            store,
            steps.record_step_outcome,
            lease,
            now=T0,
            **_succeeded(record.run_id, "charge", 2),
        )  # type: ignore[arg-type]

    stored = (await run_on(store, steps.load_run_outcomes, record.run_id))["charge"]
    assert stored.result == 1
    # The refused checkpoint wrote no attempt row; the first try is read from its step's row.
    assert await _count(store, StepAttemptRow) == 0
    tries = (await run_on(store, steps.list_step_attempts, [stored]))[stored.step_id]
    assert [(a.attempt_number, a.status) for a in tries] == [(0, AttemptStatus.SUCCEEDED)]
