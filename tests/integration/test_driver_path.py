"""The worker's own connections (asyncpg on PostgreSQL, SQLite's writer thread), through the
store the worker runs on: checkpoints, claims and finishes alone and grouped, the due sleeps
a claim completes in bulk."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

import zart
from tests.factories import (
    LEASE,
    T0,
    claim,
    claim_only,
    completed_step,
    new_execution,
    new_id,
    retrying_step,
    run_on,
    worker_store,
)
from zart import DurableScheduler
from zart.database import DriverConnections, create_engine, with_schema
from zart.errors import LeaseLost, NonDeterministicReplay
from zart.migrations import upgrade
from zart.models import (
    AttemptStatus,
    ExecutionStatus,
    RunRow,
    StepAttemptRow,
    StepKind,
    StepRow,
    StepStatus,
    TimerKind,
    table_of,
)
from zart.repositories import claims, executions, group_checkpoints, steps, timers, wakeups
from zart.repositories import leases as leases_repo
from zart.repositories import statements as raw
from zart.repositories.records import AttemptOutcome, ClaimedExecution, ExecutionRecord, Lease
from zart.repositories.store import Store
from zart.runtime.execution import Runtime, execute
from zart.testing import FakeClock

step_rows = table_of(StepRow)
attempt_rows = table_of(StepAttemptRow)
run_rows = table_of(RunRow)

COMPLETED = ExecutionStatus.COMPLETED
FAILED = ExecutionStatus.FAILED


def _of(claimed: ClaimedExecution) -> tuple[Lease, ExecutionRecord]:
    """The lease and the claimed record a finish is given."""
    return claimed.lease, claimed.execution


async def _count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)


async def test_a_worker_checkpoint_stores_what_the_engine_path_reads(
    engine: AsyncEngine, store: Store
) -> None:
    async with engine.begin() as conn:
        record = await new_execution(conn)
        lease = await claim_only(conn, record.execution_id)
    value = {"a": [1, 2.5, "x", None, True], "nested": {"k": "ü"}}
    written = await store.run(
        steps.record_step_outcome,
        lease,
        completed_step(record.run_id, "a", value),
        attempt=AttemptOutcome(0, AttemptStatus.SUCCEEDED, T0, T0),
        now=T0,
    )
    with pytest.raises(NonDeterministicReplay):  # completed outcomes never change
        await store.run(
            steps.record_step_outcome, lease, completed_step(record.run_id, "a", 2), now=T0
        )
    stale = Lease(lease.execution_id, "not-the-token", lease.owner, lease.expires_at)
    with pytest.raises(LeaseLost):
        await store.run(
            steps.record_step_outcome, stale, completed_step(record.run_id, "b", 3), now=T0
        )
    loaded = await store.run(steps.load_outcomes_of_runs, [record.run_id, "none"])
    assert written.result == value
    assert written.status is StepStatus.COMPLETED
    assert written.completed_at == T0
    assert written.created_at == T0
    async with engine.connect() as conn:  # committed, and read back the same by SQLAlchemy
        assert await run_on(conn, steps.load_run_outcomes, record.run_id) == {"a": written}
    assert loaded == {record.run_id: {"a": written}, "none": {}}
    # A first try that succeeded is in its step row only, and read back from it.
    assert await _count(engine, attempt_rows) == 0
    (first_try,) = (await store.run(steps.list_step_attempts, [written]))[written.step_id]
    assert (first_try.attempt_id, first_try.status, first_try.started_at) == (
        None,
        AttemptStatus.SUCCEEDED,
        T0,
    )
    assert await _count(engine, step_rows) == 1  # the fenced-out "b" wrote nothing


async def test_the_worker_claim_and_finish_are_fenced(engine: AsyncEngine, store: Store) -> None:
    async with engine.begin() as conn:
        first = await new_execution(conn)
        second = await new_execution(conn)
    claimed, _outcomes = await store.run(
        claims.claim_and_load,
        worker_id="w",
        task_names=["onboarding", "other"],
        limit=10,
        now=T0,
        lease_timeout=LEASE,
    )
    assert await store.run(wakeups.next_claimable_at, ["onboarding"], after=T0) == T0 + LEASE
    assert {c.execution.execution_id for c in claimed} == {
        first.execution_id,
        second.execution_id,
    }
    assert all(c.previous_status is ExecutionStatus.SCHEDULED for c in claimed)
    assert all(c.execution.status is ExecutionStatus.RUNNING for c in claimed)
    leases = {c.execution.execution_id: c.lease for c in claimed}
    records = {c.execution.execution_id: c.execution for c in claimed}
    done = await store.run(
        leases_repo.finish_execution,
        leases[first.execution_id],
        execution=records[first.execution_id],
        status=ExecutionStatus.COMPLETED,
        result={"ok": [1]},
        now=T0,
    )
    lease = leases[second.execution_id]
    with pytest.raises(LeaseLost):
        await store.run(
            leases_repo.finish_execution,
            Lease(lease.execution_id, "stale", lease.owner, lease.expires_at),
            execution=records[second.execution_id],
            status=ExecutionStatus.FAILED,
            error={"kind": "x"},
            now=T0,
        )
    assert done.status is ExecutionStatus.COMPLETED
    assert done.result == {"ok": [1]}
    async with engine.connect() as conn:
        assert done == await run_on(conn, executions.get_execution, first.execution_id)
        stored = await run_on(conn, executions.get_execution, second.execution_id)
        ended = (
            await conn.execute(select(run_rows).where(run_rows.c.run_id == first.run_id))
        ).one()
    assert stored is not None
    assert stored.status is ExecutionStatus.RUNNING
    assert ended.status == "completed"
    assert ended.result == {"ok": [1]}
    assert ended.completed_at == T0


@pytest.mark.postgresql_only
async def test_a_broken_driver_connection_is_an_sqlalchemy_error_and_replaced(
    engine: AsyncEngine,
) -> None:
    driver = DriverConnections(engine, size=1)
    try:
        async with driver.connection() as connection:
            pid = connection.get_server_pid()
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        await asyncio.sleep(0.1)
        with pytest.raises(SQLAlchemyError):
            async with driver.connection() as connection:
                await connection.fetch("SELECT 1")
        async with driver.connection() as connection:  # a new connection, not the dead one
            assert await connection.fetchval("SELECT 1") == 1
            assert connection.get_server_pid() != pid
    finally:
        await driver.close()
    with pytest.raises(OperationalError):
        async with driver.connection():
            pass


@pytest.mark.postgresql_only
async def test_driver_connections_plan_once_and_leave_the_engines_alone(
    engine: AsyncEngine,
) -> None:
    driver = DriverConnections(engine, size=2)
    try:
        async with driver.connection() as first, driver.connection() as second:
            for connection in (first, second):
                assert await connection.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
    finally:
        await driver.close()
    # The application's pooled connections keep the server's default.
    async with engine.connect() as conn:
        assert await conn.scalar(text("SHOW plan_cache_mode")) == "auto"


@pytest.mark.postgresql_only
async def test_driver_statements_follow_the_configured_schema(database_url: str) -> None:
    base = create_engine(database_url)
    try:
        async with base.begin() as conn:
            await conn.execute(text("CREATE SCHEMA jobs"))
        await upgrade(base, schema="jobs")
        engine = with_schema(base, "jobs")
        async with engine.begin() as conn:
            record = await new_execution(conn)
            lease = await claim_only(conn, record.execution_id)
        seen: list[str] = []
        raw.statement_observers.append(seen.append)
        try:
            async with worker_store(engine) as store:
                await store.run(
                    steps.record_step_outcome, lease, completed_step(record.run_id, "a", 1), now=T0
                )
        finally:
            raw.statement_observers.remove(seen.append)
        assert seen
        assert "jobs.zart_steps" in seen[0]
        async with engine.connect() as conn:
            assert set(await run_on(conn, steps.load_run_outcomes, record.run_id)) == {"a"}
        async with base.connect() as conn:  # nothing in the default schema's tables
            assert await conn.scalar(select(func.count()).select_from(step_rows)) == 0
    finally:
        await base.dispose()


# -- due sleeps completed by the claim (both backends) -----------------------------------------


async def test_a_claim_completes_due_sleeps_only(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        record = await new_execution(conn)
        lease = await claim_only(conn, record.execution_id)

        def waiting(name: str, kind: StepKind, wake_in: float) -> steps.StepOutcome:
            return steps.StepOutcome(
                run_id=record.run_id,
                name=name,
                kind=kind,
                status=StepStatus.WAITING,
                position=0,
                attempts=0,
                wake_at=T0 + timedelta(seconds=wake_in),
            )

        for outcome in (
            waiting("due", StepKind.SLEEP, 1),
            waiting("later", StepKind.SLEEP, 60),
            waiting("retry", StepKind.STEP, 1),
        ):
            await run_on(conn, steps.record_step_outcome, lease, outcome, now=T0)
        now = T0 + timedelta(seconds=2)
        assert (
            await run_on(conn, steps.complete_due_sleeps, [record.run_id, "other-run"], now=now)
            == 1
        )
        outcomes = await run_on(conn, steps.load_run_outcomes, record.run_id)
    due = outcomes["due"]
    assert (due.status, due.result, due.attempts, due.completed_at) == (
        StepStatus.COMPLETED,
        None,
        1,
        now,
    )
    assert due.wake_at == T0 + timedelta(seconds=1)
    assert outcomes["later"].status is StepStatus.WAITING
    assert outcomes["retry"].status is StepStatus.WAITING


async def test_a_waking_claim_fires_timers_and_completes_sleeps_of_woken_runs_only(
    engine: AsyncEngine,
) -> None:
    """The worker's claim on PostgreSQL is one autocommit statement: for the runs it brings
    back from ``waiting`` it fires their due timers and completes their due sleeps; a run it
    takes over from an expired lease (``running`` before) keeps both for its handler."""

    async def asleep(conn: Any, *, lease_timeout: timedelta = LEASE) -> tuple[Any, Lease]:
        record = await new_execution(conn)
        lease = await claim_only(conn, record.execution_id, lease_timeout=lease_timeout)
        for name, seconds in (("nap", 1), ("later", 60)):
            outcome = steps.StepOutcome(
                run_id=record.run_id,
                name=name,
                kind=StepKind.SLEEP,
                status=StepStatus.WAITING,
                position=0 if name == "nap" else 1,
                attempts=0,
                wake_at=T0 + timedelta(seconds=seconds),
            )
            await run_on(conn, steps.record_step_outcome, lease, outcome, now=T0)
            await run_on(
                conn,
                timers.create_timer,
                execution_id=record.execution_id,
                run_id=record.run_id,
                name=name,
                kind=TimerKind.SLEEP,
                fire_at=T0 + timedelta(seconds=seconds),
                now=T0,
            )
        return record, lease

    async with engine.begin() as conn:
        woken, lease = await asleep(conn)
        await run_on(conn, leases_repo.suspend_execution, lease, run_id=woken.run_id, now=T0)
        # Its worker died mid-sleep: the lease (1 s) expires before the claim below.
        taken_over, _ = await asleep(conn, lease_timeout=timedelta(seconds=1))
    now = T0 + timedelta(seconds=2)
    async with worker_store(engine) as store:
        claimed = await store.run(
            claims.claim_ready_executions,
            worker_id="w",
            task_names=["onboarding"],
            limit=10,
            now=now,
            lease_timeout=LEASE,
            takeovers=1,
        )
    previous = {c.execution.execution_id: c.previous_status for c in claimed}
    assert previous == {
        woken.execution_id: ExecutionStatus.WAITING,
        taken_over.execution_id: ExecutionStatus.RUNNING,
    }
    async with engine.connect() as conn:
        woken_steps = await run_on(conn, steps.load_run_outcomes, woken.run_id)
        kept_steps = await run_on(conn, steps.load_run_outcomes, taken_over.run_id)
        woken_pending = [t.name for t in await run_on(conn, timers.pending_timers, woken.run_id)]
        kept_pending = [
            t.name for t in await run_on(conn, timers.pending_timers, taken_over.run_id)
        ]
    nap = woken_steps["nap"]
    assert (nap.status, nap.result, nap.attempts, nap.completed_at) == (
        StepStatus.COMPLETED,
        None,
        1,
        now,
    )
    assert woken_steps["later"].status is StepStatus.WAITING  # not due yet
    assert woken_pending == ["later"]
    assert {s.status for s in kept_steps.values()} == {StepStatus.WAITING}
    assert kept_pending == ["nap", "later"]


@zart.step("after-nap")
async def after_nap() -> str:
    return "awake"


@zart.durable("driver-napper")
async def napper(data: dict[str, Any]) -> str:
    await zart.sleep("nap", 0.3)
    return await after_nap()


async def test_a_woken_sleeper_passes_its_sleep_without_a_checkpoint(database_url: str) -> None:
    async with DurableScheduler(database_url, inline_wait_limit=0) as scheduler:
        written: list[str] = []

        def count(sql: str) -> None:
            if "INSERT INTO zart_steps" in sql:
                written.append(sql)

        def counted(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
            count(statement)

        raw.statement_observers.append(count)
        event.listen(scheduler.engine.sync_engine, "before_cursor_execute", counted)
        try:
            async with scheduler.run_worker(poll_interval=0.05):
                execution_id = await scheduler.start(napper, {})
                result = await scheduler.wait(execution_id, timeout=30)
        finally:
            raw.statement_observers.remove(count)
            event.remove(scheduler.engine.sync_engine, "before_cursor_execute", counted)
        async with scheduler.engine.connect() as conn:
            timeline = await run_on(
                conn, steps.load_run_outcomes, (await scheduler.status(execution_id)).run_id
            )
    assert result == "awake"
    nap = timeline["nap"]
    assert nap.status is StepStatus.COMPLETED
    assert nap.completed_at is not None
    assert nap.wake_at is not None
    assert nap.completed_at >= nap.wake_at
    # The sleep's wait and the step after it: the sleep's completion rode on the claim.
    assert len(written) == 2, written


# -- group commit on PostgreSQL -----------------------------------------------------------------


async def _completed_and_taken_over(
    conn: Any, lease: Lease, done: ExecutionRecord, lost: ExecutionRecord
) -> None:
    """``done``'s step ``a`` completed (with ``lease``); ``lost`` taken over by someone else."""
    await run_on(
        conn, steps.record_step_outcome, lease, completed_step(done.run_id, "a", "first"), now=T0
    )
    await conn.execute(
        text("UPDATE zart_executions SET lease_token = 'other' WHERE execution_id = :e"),
        {"e": lost.execution_id},
    )


async def test_a_group_of_checkpoints_is_fenced_item_by_item(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        kept = await new_execution(conn)
        lost = await new_execution(conn)
        done = await new_execution(conn)
        leases = {c.execution.execution_id: c.lease for c in await claim(conn, worker_id="w")}
        await _completed_and_taken_over(conn, leases[done.execution_id], done, lost)
    async with worker_store(engine) as store:
        results = await store.run(
            group_checkpoints.record_step_outcomes,
            [
                (  # an attempt that ended after its outcome: one the group stores in a row
                    leases[kept.execution_id],
                    completed_step(kept.run_id, "a", {"v": [1, None]}),
                    AttemptOutcome(0, AttemptStatus.SUCCEEDED, T0, T0 + timedelta(seconds=1)),
                ),
                (leases[lost.execution_id], completed_step(lost.run_id, "a", 2), None),
                (leases[done.execution_id], completed_step(done.run_id, "a", "again"), None),
                (leases[kept.execution_id], completed_step(kept.run_id, "b", None, 1), None),
            ],
            now=T0,
        )
    first, refused, replayed, second = results
    assert not isinstance(first, BaseException)
    assert first.result == {"v": [1, None]}
    assert isinstance(refused, LeaseLost)
    assert isinstance(replayed, NonDeterministicReplay)
    assert not isinstance(second, BaseException)
    assert second.result is None
    assert second.position == 1
    async with engine.connect() as conn:
        assert await run_on(conn, steps.load_run_outcomes, kept.run_id) == {"a": first, "b": second}
        assert await run_on(conn, steps.load_run_outcomes, lost.run_id) == {}
        assert (await run_on(conn, steps.load_run_outcomes, done.run_id))["a"].result == "first"
        stored_attempts = await run_on(conn, steps.list_step_attempts, [first, second])
    assert [a.attempt_number for a in stored_attempts[first.step_id]] == [0]
    assert stored_attempts[first.step_id][0].attempt_id is not None
    # "b" came without an attempt: no row; its one try is read back from the step row.
    assert [a.attempt_id for a in stored_attempts[second.step_id]] == [None]


async def test_a_group_of_first_writes_is_fenced_item_by_item(
    engine: AsyncEngine,
) -> None:
    """Every item the checkpoint of a step's first successful attempt (what the single
    checkpoint writes with FIRST_CHECKPOINT): in a group, an unfinished row is replaced, a
    completed one refused, a lost lease refused, each item on its own, and what is written
    is stored as the single checkpoint stores it."""
    later = T0 + timedelta(seconds=5)
    async with engine.begin() as conn:
        fresh, lost, done, retried = [await new_execution(conn) for _ in range(4)]
        leases = {c.execution.execution_id: c.lease for c in await claim(conn, worker_id="w")}
        await run_on(
            conn,
            steps.record_step_outcome,
            leases[retried.execution_id],
            retrying_step(retried.run_id, "a", {"kind": "business"}, later),
            attempt=AttemptOutcome(0, AttemptStatus.FAILED, T0, T0, error={"m": "x"}),
            now=T0,
        )
        await _completed_and_taken_over(conn, leases[done.execution_id], done, lost)

    def first_write(run: ExecutionRecord, result: Any, number: int = 0) -> Any:
        outcome = steps.StepOutcome(
            run_id=run.run_id,
            name="a",
            kind=StepKind.STEP,
            status=StepStatus.COMPLETED,
            position=0,
            attempts=number + 1,
            result=result,
            completed_at=later,
        )
        attempt = AttemptOutcome(number, AttemptStatus.SUCCEEDED, T0, later)
        return (leases[run.execution_id], outcome, attempt)

    async with worker_store(engine) as store:
        results = await store.run(
            group_checkpoints.record_step_outcomes,
            [
                first_write(fresh, {"v": [1, None]}),
                first_write(lost, 2),
                first_write(done, "again"),
                first_write(retried, "ok", 1),
            ],
            now=later,
        )
    written, refused, replayed, replaced = results
    assert not isinstance(written, BaseException)
    assert isinstance(refused, LeaseLost)
    assert isinstance(replayed, NonDeterministicReplay)
    assert not isinstance(replaced, BaseException)
    assert (replaced.status, replaced.result, replaced.created_at) == (
        StepStatus.COMPLETED,
        "ok",
        T0,
    )
    async with engine.connect() as conn:
        assert await run_on(conn, steps.load_run_outcomes, fresh.run_id) == {"a": written}
        assert await run_on(conn, steps.load_run_outcomes, lost.run_id) == {}
        assert (await run_on(conn, steps.load_run_outcomes, done.run_id))["a"].result == "first"
        assert await run_on(conn, steps.load_run_outcomes, retried.run_id) == {"a": replaced}
        stored = await run_on(conn, steps.list_step_attempts, [written, replaced])
        # As the general statement stores them: JSON null, not SQL NULL, in the JSON columns.
        nulls = (
            await conn.execute(
                select(
                    func.count(),
                ).where(
                    step_rows.c.step_id == written.step_id,
                    step_rows.c.error.is_not(None),
                    step_rows.c.event_schema.is_not(None),
                    step_rows.c.wake_at.is_(None),
                )
            )
        ).scalar_one()
    assert [(a.attempt_number, a.status) for a in stored[written.step_id]] == [
        (0, AttemptStatus.SUCCEEDED)
    ]
    assert stored[written.step_id][0].completed_at == later
    assert stored[written.step_id][0].attempt_id is None  # in the step row, as alone
    assert all(a.attempt_id is not None for a in stored[replaced.step_id])
    assert [a.status for a in stored[replaced.step_id]] == [
        AttemptStatus.FAILED,
        AttemptStatus.SUCCEEDED,
    ]
    if engine.dialect.name == "postgresql":
        assert nulls == 1


@zart.step("group-tick-{i}")
async def group_tick(i: int) -> int:
    await asyncio.sleep(0)
    return i


@zart.durable("driver-group-ten")
async def group_ten(data: dict[str, Any]) -> int:
    return sum([await group_tick(i) for i in range(10)])


@pytest.mark.postgresql_only
async def test_concurrent_checkpoints_share_statements_on_postgresql(database_url: str) -> None:
    """Concurrent runs' checkpoints go out in shared statements; a heartbeat every 20 ms
    renews leases meanwhile (both lock several execution rows, in the same order)."""
    async with DurableScheduler(database_url) as scheduler:
        ids = [await scheduler.start(group_ten, {}) for _ in range(32)]
        statements: list[str] = []

        def seen(sql: str) -> None:
            if "INSERT INTO zart_steps" in sql:
                statements.append(sql)

        raw.statement_observers.append(seen)
        try:
            async with scheduler.run_worker(
                concurrency=32, poll_interval=0.02, lease_timeout=2.0, heartbeat_interval=0.02
            ):
                results = [await scheduler.wait(eid, timeout=60) for eid in ids]
        finally:
            raw.statement_observers.remove(seen)
        async with scheduler.engine.connect() as conn:
            counts = [
                len(
                    await run_on(
                        conn, steps.load_run_outcomes, (await scheduler.status(eid)).run_id
                    )
                )
                for eid in ids
            ]
    assert results == [45] * 32
    assert counts == [10] * 32
    # One by one, the 320 checkpoints would take 320 statements.
    assert len(statements) < 320, len(statements)


async def test_a_group_of_finishes_is_fenced_item_by_item(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        done = await new_execution(conn)
        failed = await new_execution(conn)
        lost = await new_execution(conn)
        claimed = {c.execution.execution_id: c for c in await claim(conn, worker_id="w")}
        await conn.execute(
            text("UPDATE zart_executions SET lease_token = 'other' WHERE execution_id = :e"),
            {"e": lost.execution_id},
        )
    async with worker_store(engine) as store:
        results = await store.run(
            leases_repo.finish_executions,
            [
                (*_of(claimed[done.execution_id]), COMPLETED, {"r": [1]}, None),
                (*_of(claimed[failed.execution_id]), FAILED, None, {"kind": "x"}),
                (*_of(claimed[lost.execution_id]), COMPLETED, 3, None),
            ],
            now=T0,
        )
    ok, bad, refused = results
    assert not isinstance(ok, BaseException)
    assert (ok.status, ok.result, ok.completed_at) == (ExecutionStatus.COMPLETED, {"r": [1]}, T0)
    assert not isinstance(bad, BaseException)
    assert (bad.status, bad.error) == (ExecutionStatus.FAILED, {"kind": "x"})
    assert isinstance(refused, LeaseLost)
    async with engine.connect() as conn:
        untouched = await run_on(conn, executions.get_execution, lost.execution_id)
        run_rows_now = {
            row.run_id: row
            for row in await conn.execute(
                select(run_rows).where(
                    run_rows.c.execution_id.in_([e.execution_id for e in (done, failed, lost)])
                )
            )
        }
    assert untouched is not None
    assert untouched.status is ExecutionStatus.RUNNING
    assert run_rows_now[done.run_id].status == "completed"
    assert run_rows_now[done.run_id].result == {"r": [1]}
    assert run_rows_now[failed.run_id].status == "failed"
    assert run_rows_now[failed.run_id].error == {"kind": "x"}
    assert run_rows_now[lost.run_id].completed_at is None


async def test_a_group_finish_returns_what_a_read_of_the_rows_gives(engine: AsyncEngine) -> None:
    """The group finish reads back only what the database decides (the version, the times):
    the rest of each record is the claimed one and the values written, and must be field for
    field what reading the row gives, whatever happened to the row under the lease."""
    payload = {"user": {"id": 7, "tags": ["a", "ü"]}, "ratio": 2.5}
    async with engine.begin() as conn:
        done = await new_execution(conn, payload=payload)
        failed = (
            await run_on(
                conn,
                executions.create_execution,
                execution_id=new_id(),
                task_name="onboarding",
                payload=[1, None],
                now=T0,
                deadline_at=T0 + timedelta(hours=1),
            )
        ).execution
        lost = await new_execution(conn)
        await conn.execute(  # as a schedule firing stores it
            text("UPDATE zart_executions SET fire_time = :t WHERE execution_id = :e"),
            {"t": T0 - timedelta(minutes=5), "e": done.execution_id},
        )
    result = {"b": [1, 2.5, "x", None, True, -3], "a": {"nested": "ü", "big": 10**20}}
    error = {
        "kind": "handler_failed",
        "message": "boom",
        "error": {"type": "builtins:ValueError", "args": {"$zart": "tuple", "v": ["boom"]}},
    }
    later = T0 + timedelta(seconds=7, microseconds=123456)
    async with worker_store(engine) as store:
        claimed = {
            c.execution.execution_id: c
            for c in await store.run(
                claims.claim_ready_executions,
                worker_id="w",
                task_names=["onboarding"],
                limit=10,
                now=T0,
                lease_timeout=LEASE,
            )
        }
        async with engine.begin() as conn:
            # A heartbeat moves claimable_at under the lease; another worker takes `lost`.
            renewed, _ = await run_on(
                conn,
                leases_repo.renew_leases,
                [c.lease for c in claimed.values()],
                now=T0 + timedelta(seconds=5),
                lease_timeout=LEASE,
            )
            assert len(renewed) == 3
            await conn.execute(
                text("UPDATE zart_executions SET lease_token = 'other' WHERE execution_id = :e"),
                {"e": lost.execution_id},
            )
            before = await run_on(conn, executions.get_execution, lost.execution_id)
        ok, bad, refused = await store.run(
            leases_repo.finish_executions,
            [
                (*_of(claimed[done.execution_id]), COMPLETED, result, None),
                (*_of(claimed[failed.execution_id]), FAILED, None, error),
                (*_of(claimed[lost.execution_id]), COMPLETED, 1, None),
            ],
            now=later,
        )
    async with engine.connect() as conn:
        stored = {
            e.execution_id: await run_on(conn, executions.get_execution, e.execution_id)
            for e in (done, failed, lost)
        }
    assert isinstance(refused, LeaseLost)
    assert refused.execution_id == lost.execution_id
    assert stored[lost.execution_id] == before  # nothing changed
    assert ok == stored[done.execution_id]
    assert bad == stored[failed.execution_id]
    assert not isinstance(ok, LeaseLost)
    assert not isinstance(bad, LeaseLost)
    # The fields the record takes from the claim are not trivially equal.
    assert (ok.status, ok.payload, ok.result, ok.error) == (COMPLETED, payload, result, None)
    assert (ok.fire_time, ok.completed_at, ok.updated_at) == (
        T0 - timedelta(minutes=5),
        later,
        later,
    )
    assert (ok.claimable_at, ok.lease_owner, ok.claim_count) == (None, None, 1)
    assert (bad.status, bad.result, bad.error) == (FAILED, None, error)
    assert bad.deadline_at == T0 + timedelta(hours=1)
    assert bad.version == claimed[failed.execution_id].execution.version + 1


@zart.durable("driver-timed", timeout="1h")
async def timed(data: dict[str, Any]) -> dict[str, Any]:
    return {"seen": data, "ratio": 0.1}


@zart.durable("driver-timed-failing", timeout="1h")
async def timed_failing(data: dict[str, Any]) -> None:
    raise ValueError(data["why"])


async def test_a_run_returns_its_finished_execution_as_stored(database_url: str) -> None:
    """The runtime's finish hands on the record the claim returned, not the run's copy of it
    (which carries the deadline of the handler's timeout when none is stored)."""
    async with DurableScheduler(database_url) as scheduler:
        runtime = scheduler.runtime
        now = scheduler.clock.now()
        async with scheduler.engine.begin() as conn:  # started by name, no deadline stored
            for task_name, payload in (("driver-timed", {"a": 1}), ("driver-timed-failing", {})):
                await run_on(
                    conn,
                    executions.create_execution,
                    execution_id=new_id(),
                    task_name=task_name,
                    payload={"why": "no", **payload},
                    now=now,
                )
        runtime.open_connections()
        try:
            claimed = await runtime.store.run(
                claims.claim_ready_executions,
                worker_id="w",
                task_names=["driver-timed", "driver-timed-failing"],
                limit=10,
                now=now,
                lease_timeout=LEASE,
            )
            handlers = {"driver-timed": timed, "driver-timed-failing": timed_failing}
            finished = [
                await execute(runtime, handlers[c.execution.task_name], c, {}) for c in claimed
            ]
        finally:
            await runtime.close_connections()
        async with scheduler.engine.connect() as conn:
            for record in finished:
                assert record is not None
                assert record.deadline_at is None
                assert record == await run_on(conn, executions.get_execution, record.execution_id)
    assert sorted(r.status for r in finished if r is not None) == [COMPLETED, FAILED]


async def test_a_group_whose_first_result_is_a_list_is_stored_as_json(
    engine: AsyncEngine,
) -> None:
    """The group statements pass each column as one array: a JSON cell that is itself a list
    (here the first item's result, and the first finish's) is one element, not a sub-array."""
    async with engine.begin() as conn:
        first = await new_execution(conn)
        second = await new_execution(conn)
        claimed = {c.execution.execution_id: c for c in await claim(conn, worker_id="w")}
    leases = {execution_id: c.lease for execution_id, c in claimed.items()}
    async with worker_store(engine) as store:
        stored = await store.run(
            group_checkpoints.record_step_outcomes,
            [
                (leases[first.execution_id], completed_step(first.run_id, "a", [1, 2]), None),
                (leases[second.execution_id], completed_step(second.run_id, "a", None), None),
            ],
            now=T0,
        )
        finished = await store.run(
            leases_repo.finish_executions,
            [
                (*_of(claimed[first.execution_id]), COMPLETED, [[1], "x"], None),
                (*_of(claimed[second.execution_id]), COMPLETED, None, None),
            ],
            now=T0,
        )
    assert [getattr(r, "result", r) for r in stored] == [[1, 2], None]
    assert [getattr(r, "result", r) for r in finished] == [[[1], "x"], None]
    async with engine.connect() as conn:
        assert (await run_on(conn, steps.load_run_outcomes, first.run_id))["a"].result == [1, 2]


async def test_a_cancelled_caller_leaves_its_group_and_its_outcome_stored(
    engine: AsyncEngine,
) -> None:
    """A caller cancelled while its checkpoint waits in a group loses only its own answer:
    the group is written, the cancelled run's outcome included (its step did run)."""
    async with engine.begin() as conn:
        runs = [await new_execution(conn) for _ in range(3)]
        leases = {c.execution.execution_id: c.lease for c in await claim(conn, worker_id="w")}
    runtime = Runtime(engine, clock=FakeClock(T0))
    runtime.open_connections()
    batcher = runtime._checkpoints
    try:
        tasks = [
            asyncio.create_task(
                batcher.submit((leases[run.execution_id], completed_step(run.run_id, "a", i), None))
            )
            for i, run in enumerate(runs)
        ]
        await asyncio.sleep(0)  # the first writes alone; the other two queue behind it
        tasks[2].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        for _ in range(100):  # the group the cancelled one was in goes on without it
            if not batcher.busy:
                break
            await asyncio.sleep(0.01)
    finally:
        await runtime.close_connections()
    assert [getattr(r, "result", r) for r in done[:2]] == [0, 1]
    assert isinstance(done[2], asyncio.CancelledError)
    async with engine.connect() as conn:
        assert (await run_on(conn, steps.load_run_outcomes, runs[2].run_id))["a"].result == 2


async def test_a_grouped_retry_keeps_the_rows_position_and_creation(engine: AsyncEngine) -> None:
    """A group checkpoint returns only what the row kept (id, position, created_at); the
    record it builds from the item must equal the stored row, a retry's overwrite included."""
    later = T0 + timedelta(seconds=5)
    async with engine.begin() as conn:
        first = await new_execution(conn)
        other = await new_execution(conn)
        leases = {c.execution.execution_id: c.lease for c in await claim(conn, worker_id="w")}
        waiting = retrying_step(first.run_id, "a", {"kind": "business"}, T0)
        await run_on(conn, steps.record_step_outcome, leases[first.execution_id], waiting, now=T0)
    retried = steps.StepOutcome(
        run_id=first.run_id,
        name="a",
        kind=StepKind.STEP,
        status=StepStatus.COMPLETED,
        position=3,
        attempts=2,
        result={"z": 1, "a": [1.5, "x"]},
        completed_at=later,
    )
    async with worker_store(engine) as store:
        stored = await store.run(
            group_checkpoints.record_step_outcomes,
            [
                (leases[first.execution_id], retried, None),
                (leases[other.execution_id], completed_step(other.run_id, "b", 7, 2), None),
            ],
            now=later,
        )
    record, fresh = stored
    assert not isinstance(record, BaseException)
    assert not isinstance(fresh, BaseException)
    assert (record.position, record.created_at, record.updated_at) == (0, T0, later)
    async with engine.connect() as conn:
        assert (await run_on(conn, steps.load_run_outcomes, first.run_id))["a"] == record
        assert (await run_on(conn, steps.load_run_outcomes, other.run_id))["b"] == fresh
