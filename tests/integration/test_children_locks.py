"""The lock order of a child's finish against its parent's cancel, with the interleaving that
would deadlock forced (PostgreSQL): the finish runs its first statement and stops; the cancel
starts and blocks on a lock; then the finish goes on. Both commit when every transaction locks
the two rows in one order; a finish that locked its own row before its parent's would meet
the cancel in a cycle here, and PostgreSQL would abort one of them. Likewise two handlers
sending each other a message at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from zart.clock import SYSTEM_CLOCK
from zart.models import ExecutionStatus, StepKind, StepStatus
from zart.repositories import children, claims, events, executions, messages, steps
from zart.repositories.executors import ConnectionExecutor, Rows, drive
from zart.repositories.records import ClaimedExecution, Lease
from zart.repositories.statements import Statement

pytestmark = pytest.mark.postgresql_only


async def _parent_and_running_child(engine: AsyncEngine) -> tuple[str, ClaimedExecution]:
    now = SYSTEM_CLOCK.now()
    parent_id = f"lock-parent-{uuid.uuid4()}"
    lease = Lease(parent_id, str(uuid.uuid4()), "test-worker", now + timedelta(minutes=5))
    async with engine.begin() as conn:
        db = ConnectionExecutor(conn)
        created = await db.run(
            executions.create_execution,
            execution_id=parent_id,
            task_name="lock-parent",
            payload=None,
            now=now,
            lease=lease,
        )
        start_step = steps.StepOutcome(
            run_id=created.execution.run_id,
            name="zart/start-child/0",
            kind=StepKind.CAPTURE,
            status=StepStatus.COMPLETED,
            position=0,
            attempts=1,
            result=f"{parent_id}.child-0",
            completed_at=now,
        )
        await db.run(
            children.start_child,
            lease,
            start_step=start_step,
            execution_id=f"{parent_id}.child-0",
            task_name="lock-child",
            payload=None,
            deadline_at=None,
            queue="default",
            parent_close="cancel",
            now=now,
            channel=None,
        )
        (claimed,) = await db.run(
            claims.claim_ready_executions,
            worker_id="test-worker",
            task_names=["lock-child"],
            limit=1,
            now=now,
            lease_timeout=timedelta(minutes=5),
        )
    return parent_id, claimed


async def _waits_for_a_lock(engine: AsyncEngine, pid: int, done: asyncio.Task[Any]) -> None:
    async with engine.connect() as watcher:
        for _ in range(2000):
            if done.done():
                return
            found = await watcher.execute(
                text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                {"pid": pid},
            )
            if found.scalar() == "Lock":
                return
            await asyncio.sleep(0.005)
    raise AssertionError("the cancel never reached the finish's locks")


async def test_a_child_finishing_while_its_parent_is_cancelled_commits_both(
    engine: AsyncEngine,
) -> None:
    parent_id, claimed = await _parent_and_running_child(engine)
    paused, go_on = asyncio.Event(), asyncio.Event()

    async with engine.connect() as finishing, engine.connect() as cancelling:
        await finishing.begin()
        finisher = ConnectionExecutor(finishing)
        first = True

        async def stop_after_the_first(statement: Statement, params: Mapping[str, Any]) -> Rows:
            nonlocal first
            found = await finisher._execute(statement, params)
            if first:
                first = False
                paused.set()
                await go_on.wait()
            return found

        finish = asyncio.create_task(
            drive(
                children.finish_child(
                    finisher.backend,
                    claimed.lease,
                    execution=claimed.execution,
                    status=ExecutionStatus.COMPLETED,
                    result=1,
                    now=SYSTEM_CLOCK.now(),
                ),
                stop_after_the_first,
            )
        )
        await paused.wait()
        pid = (await cancelling.execute(text("SELECT pg_backend_pid()"))).scalar_one()

        async def cancel() -> Any:
            found = await ConnectionExecutor(cancelling).run(
                children.cancel_family, parent_id, now=SYSTEM_CLOCK.now()
            )
            await cancelling.commit()
            return found

        cancelled = asyncio.create_task(cancel())
        await _waits_for_a_lock(engine, pid, cancelled)
        go_on.set()
        finished = await finish
        await finishing.commit()
        parent = await cancelled

    assert finished.status is ExecutionStatus.COMPLETED
    assert parent is not None
    assert parent.status is ExecutionStatus.CANCELLED
    async with engine.connect() as conn:
        child = await ConnectionExecutor(conn).run(
            executions.get_execution, claimed.execution.execution_id
        )
    assert child is not None
    assert child.status is ExecutionStatus.COMPLETED  # finished before the cancel reached it


async def _running(engine: AsyncEngine, name: str) -> tuple[Lease, str]:
    now = SYSTEM_CLOCK.now()
    execution_id = f"{name}-{uuid.uuid4()}"
    lease = Lease(execution_id, str(uuid.uuid4()), "test-worker", now + timedelta(minutes=5))
    async with engine.begin() as conn:
        created = await ConnectionExecutor(conn).run(
            executions.create_execution,
            execution_id=execution_id,
            task_name="lock-sender",
            payload=None,
            now=now,
            lease=lease,
        )
    return lease, created.execution.run_id


def _send(backend: Any, lease: Lease, run_id: str, to: str) -> Any:
    now = SYSTEM_CLOCK.now()
    step = steps.StepOutcome(
        run_id=run_id,
        name="zart/send/0",
        kind=StepKind.CAPTURE,
        status=StepStatus.COMPLETED,
        position=0,
        attempts=1,
        result={"execution_id": to, "topic": "t"},
        completed_at=now,
    )
    return messages.send_from_run(
        backend, lease, send_step=step, execution_id=to, topic="t", message=1, now=now
    )


async def test_two_executions_sending_to_each_other_at_once_both_commit(
    engine: AsyncEngine,
) -> None:
    (a, a_run), (b, b_run) = await _running(engine, "lock-a"), await _running(engine, "lock-b")
    paused, go_on = asyncio.Event(), asyncio.Event()
    async with engine.connect() as first, engine.connect() as second:
        await first.begin()
        sender = ConnectionExecutor(first)
        calls = 0

        async def stop_after_the_first(statement: Statement, params: Mapping[str, Any]) -> Rows:
            nonlocal calls
            found = await sender._execute(statement, params)
            calls += 1
            if calls == 1:
                paused.set()
                await go_on.wait()
            return found

        a_to_b = asyncio.create_task(
            drive(_send(sender.backend, a, a_run, b.execution_id), stop_after_the_first)
        )
        await paused.wait()
        pid = (await second.execute(text("SELECT pg_backend_pid()"))).scalar_one()

        async def b_to_a() -> Any:
            other = ConnectionExecutor(second)
            sent = await drive(_send(other.backend, b, b_run, a.execution_id), other._execute)
            await second.commit()
            return sent

        reverse = asyncio.create_task(b_to_a())
        await _waits_for_a_lock(engine, pid, reverse)
        go_on.set()
        await a_to_b
        await first.commit()
        await reverse
    async with engine.connect() as conn:
        db = ConnectionExecutor(conn)
        got_a = await db.run(events.list_events, a.execution_id)
        got_b = await db.run(events.list_events, b.execution_id)
    assert [e.name for e in got_a] == [messages.message_name("t", 1)]
    assert [e.name for e in got_b] == [messages.message_name("t", 1)]
