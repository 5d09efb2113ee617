"""Zart inside the application's transactions: starts and events in the caller's session,
transactional steps, a shared engine and a schema of Zart's own."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

import zart
from tests.factories import run_on
from tests.integration.runtime_helpers import FAST_WORKER, arrived, count, open_gate, pass_gate
from zart import DurableScheduler
from zart.database import create_engine
from zart.models import ExecutionRow, table_of
from zart.repositories import steps as steps_repo

app_metadata = MetaData()
ledger = Table(
    "app_ledger",
    app_metadata,
    Column("id", Integer, primary_key=True),
    Column("entry", String(100), nullable=False, unique=True),
)

#: Only a commit hook (or NOTIFY) can wake a worker this idle before a test gives up.
SLOW_POLL = {**FAST_WORKER, "poll_interval": 60.0}


@pytest.fixture
async def app_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The application's engine, with its own table next to Zart's."""
    engine = create_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(app_metadata.create_all)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def shared(app_engine: AsyncEngine) -> AsyncIterator[DurableScheduler]:
    """A scheduler sharing the application's engine (and pool)."""
    async with DurableScheduler(engine=app_engine) as scheduler:
        yield scheduler


async def logged(caplog: pytest.LogCaptureFixture, action: str) -> None:
    for _ in range(2000):
        if any(getattr(r, "action", None) == action for r in caplog.records):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {action!r} was logged")


async def reaches(
    scheduler: DurableScheduler, execution_id: str, status: zart.ExecutionStatus
) -> None:
    for _ in range(2000):
        if (await scheduler.status(execution_id)).status is status:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{execution_id} never became {status}")


async def entries(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.scalars(select(ledger.c.entry).order_by(ledger.c.id))).all())


async def executions(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table_of(ExecutionRow))))


@zart.step("tx-record-{entry}", transactional=True)
async def record_entry(entry: str) -> str:
    await zart.session().execute(ledger.insert().values(entry=entry))
    return entry


@zart.durable("tx-signup")
async def signup(data: dict[str, str]) -> str:
    return await record_entry(f"welcome {data['email']}")


# -- start(session=) ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["session", "connection"])
async def test_a_rolled_back_start_leaves_no_execution(
    shared: DurableScheduler, app_engine: AsyncEngine, kind: str
) -> None:
    async with app_engine.connect() as conn:
        caller: AsyncSession | AsyncConnection = (
            AsyncSession(bind=conn) if kind == "session" else conn
        )
        await conn.execute(ledger.insert().values(entry="user ada"))
        execution_id = await shared.start(signup, {"email": "ada"}, session=caller)
        await conn.rollback()

    assert await entries(app_engine) == []
    assert await executions(app_engine) == 0
    with pytest.raises(zart.ExecutionNotFound):
        await shared.status(execution_id)


@pytest.mark.parametrize("kind", ["session", "connection"])
async def test_a_committed_start_wakes_the_in_process_worker_at_commit(
    shared: DurableScheduler, app_engine: AsyncEngine, kind: str
) -> None:
    async with shared.run_worker(**SLOW_POLL):
        await asyncio.sleep(0)  # the worker is idle, sleeping up to its poll interval
        if kind == "session":
            async with AsyncSession(app_engine) as session, session.begin():
                await session.execute(ledger.insert().values(entry="user ada"))
                execution_id = await shared.start(signup, {"email": "ada"}, session=session)
        else:
            async with app_engine.begin() as conn:
                await conn.execute(ledger.insert().values(entry="user ada"))
                execution_id = await shared.start(signup, {"email": "ada"}, session=conn)
        # Well within the 60 s poll interval: only the commit can have woken the worker.
        assert await shared.wait(execution_id, timeout=20) == "welcome ada"

    assert await entries(app_engine) == ["user ada", "welcome ada"]


async def test_a_duplicate_id_does_not_poison_the_callers_transaction(
    shared: DurableScheduler, app_engine: AsyncEngine
) -> None:
    await shared.start(signup, {"email": "ada"}, execution_id="signup-ada")
    async with AsyncSession(app_engine) as session, session.begin():
        await session.execute(ledger.insert().values(entry="before"))
        same = await shared.start(
            signup, {"email": "ada"}, execution_id="signup-ada", session=session
        )
        with pytest.raises(zart.ExecutionAlreadyExists):
            await shared.start(signup, {"email": "bob"}, execution_id="signup-ada", session=session)
        await session.execute(ledger.insert().values(entry="after"))

    assert same == "signup-ada"
    assert await entries(app_engine) == ["before", "after"]
    assert await executions(app_engine) == 1


async def test_bad_input_in_the_callers_transaction_stores_nothing(
    shared: DurableScheduler, app_engine: AsyncEngine
) -> None:
    async with AsyncSession(app_engine) as session, session.begin():
        with pytest.raises(zart.UnknownTask):
            await shared.start("tx-no-such-task", {}, session=session)
        with pytest.raises(zart.ConfigurationError, match="AsyncSession or AsyncConnection"):
            await shared.start(signup, {"email": "ada"}, session=object())  # type: ignore[arg-type]
    assert await executions(app_engine) == 0


@zart.durable("tx-wait-for-approval")
async def wait_for_approval(data: dict[str, str]) -> str:
    decision: dict[str, str] = await zart.wait_for_event("approval")
    return decision["by"]


async def test_an_event_offered_in_the_callers_transaction_arrives_at_commit(
    shared: DurableScheduler, app_engine: AsyncEngine
) -> None:
    async with shared.run_worker(**SLOW_POLL):
        execution_id = await shared.start(wait_for_approval, {})
        await reaches(shared, execution_id, zart.ExecutionStatus.WAITING)
        async with AsyncSession(app_engine) as session, session.begin():
            await shared.offer_event(execution_id, "approval", {"by": "nobody"}, session=session)
            await session.rollback()
        assert (await shared.status(execution_id)).status is zart.ExecutionStatus.WAITING
        async with AsyncSession(app_engine) as session, session.begin():
            await shared.offer_event(execution_id, "approval", {"by": "grace"}, session=session)
        assert await shared.wait(execution_id, timeout=20) == "grace"


# -- enqueue (synchronous applications) ------------------------------------------------------


def sync_url(database_url: str) -> str:
    """The same database through a synchronous driver (what a Flask app would use)."""
    if database_url.startswith("sqlite"):
        return database_url.replace("sqlite+aiosqlite", "sqlite", 1)
    return database_url.replace("postgresql+asyncpg", "postgresql+psycopg", 1)


async def test_enqueue_writes_in_a_sync_session_and_a_worker_runs_it(
    shared: DurableScheduler, app_engine: AsyncEngine, database_url: str
) -> None:
    from sqlalchemy import create_engine as create_sync_engine
    from sqlalchemy.orm import Session

    def flask_view(email: str, commit: bool) -> str:
        engine = create_sync_engine(sync_url(database_url))
        try:
            with Session(engine) as session:
                session.execute(ledger.insert().values(entry=f"user {email}"))
                execution_id = zart.enqueue(session, signup, {"email": email})
                again = zart.enqueue(
                    session, "tx-signup", {"email": email}, execution_id=execution_id
                )
                assert again == execution_id
                with pytest.raises(zart.ExecutionAlreadyExists):
                    zart.enqueue(session, signup, {"email": "eve"}, execution_id=execution_id)
                with pytest.raises(zart.InvalidPayload):
                    zart.enqueue(session, signup, {"email": object()})
                session.commit() if commit else session.rollback()
            return execution_id
        finally:
            engine.dispose()

    rolled_back = await asyncio.to_thread(flask_view, "bob", False)
    async with shared.run_worker(**FAST_WORKER):
        execution_id = await asyncio.to_thread(flask_view, "ada", True)
        assert await shared.wait(execution_id, timeout=20) == "welcome ada"

    assert await entries(app_engine) == ["user ada", "welcome ada"]
    assert await executions(app_engine) == 1
    with pytest.raises(zart.ExecutionNotFound):
        await shared.status(rolled_back)


def test_enqueue_refuses_an_async_session() -> None:
    with pytest.raises(zart.ConfigurationError, match="Session or Connection"):
        zart.enqueue(object(), signup, {"email": "ada"})  # type: ignore[arg-type]


# -- transactional steps -------------------------------------------------------------------


async def test_a_transactional_steps_writes_commit_with_its_outcome(
    shared: DurableScheduler, app_engine: AsyncEngine
) -> None:
    async with shared.run_worker(**FAST_WORKER):
        execution_id = await shared.start(signup, {"email": "ada"})
        assert await shared.wait(execution_id, timeout=20) == "welcome ada"

    assert await entries(app_engine) == ["welcome ada"]
    record = await shared.status(execution_id)
    async with app_engine.connect() as conn:
        (step,) = await run_on(conn, steps_repo.list_steps, record.run_id)
    assert step.name == "tx-record-welcome ada"
    assert step.status is zart.models.StepStatus.COMPLETED


@zart.step("tx-flaky", transactional=True, retry="fixed(1, 10ms)")
async def flaky(entry: str) -> str:
    attempt = zart.context().current_attempt
    await zart.session().execute(ledger.insert().values(entry=f"{entry} attempt {attempt}"))
    if attempt == 0:
        raise ConnectionError("payment API hung up")
    return entry


@zart.durable("tx-flaky-flow")
async def flaky_flow(data: dict[str, str]) -> str:
    return await flaky(data["entry"])


async def test_a_failed_attempt_rolls_back_its_writes_and_keeps_its_history(
    shared: DurableScheduler, app_engine: AsyncEngine
) -> None:
    async with shared.run_worker(**FAST_WORKER):
        execution_id = await shared.start(flaky_flow, {"entry": "charge"})
        assert await shared.wait(execution_id, timeout=20) == "charge"

    assert await entries(app_engine) == ["charge attempt 1"]
    record = await shared.status(execution_id)
    async with app_engine.connect() as conn:
        (step,) = await run_on(conn, steps_repo.list_steps, record.run_id)
        attempts = (await run_on(conn, steps_repo.list_step_attempts, [step]))[step.step_id]
    assert [(a.attempt_number, a.status.value) for a in attempts] == [
        (0, "failed"),
        (1, "succeeded"),
    ]
    assert step.attempts == 2


@zart.step("tx-slow", transactional=True, timeout="200ms")
async def slow(entry: str) -> None:
    await zart.session().execute(ledger.insert().values(entry=entry))
    await asyncio.sleep(30)


@zart.durable("tx-slow-flow")
async def slow_flow(data: dict[str, str]) -> str:
    try:
        await slow(data["entry"])
    except zart.StepTimedOut:
        return "timed out"
    return "finished"


async def test_a_timed_out_attempt_rolls_back_its_writes(
    shared: DurableScheduler, app_engine: AsyncEngine
) -> None:
    async with shared.run_worker(**FAST_WORKER):
        execution_id = await shared.start(slow_flow, {"entry": "never"})
        assert await shared.wait(execution_id, timeout=20) == "timed out"

    assert await entries(app_engine) == []


@zart.step("tx-gated", transactional=True)
async def gated(entry: str) -> str:
    await zart.session().execute(ledger.insert().values(entry=entry))
    count("gated")
    await pass_gate()
    return entry


@zart.durable("tx-gated-flow")
async def gated_flow(data: dict[str, str]) -> str:
    return await gated(data["entry"])


@pytest.mark.postgresql_only
async def test_a_worker_that_lost_its_lease_commits_none_of_the_steps_writes(
    shared: DurableScheduler, app_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    # (On SQLite the step holds the only write lock until it commits: no takeover can happen
    # in the middle of it.)
    caplog.set_level(logging.INFO, logger="zart")
    execution_id = "tx-takeover"
    gate = open_gate(execution_id)
    async with shared.run_worker(**FAST_WORKER):
        await shared.start(gated_flow, {"entry": "charged"}, execution_id=execution_id)
        await asyncio.wait_for(arrived[execution_id].wait(), timeout=20)
        # Another worker's claim: a new lease token (what a takeover after expiry writes).
        async with app_engine.begin() as conn:
            executions_table = table_of(ExecutionRow)
            await conn.execute(
                update(executions_table)
                .where(executions_table.c.execution_id == execution_id)
                .values(lease_token="someone-else")
            )
        gate.set()
        await logged(caplog, "lease_lost")

    assert await entries(app_engine) == []
    record = await shared.status(execution_id)
    async with app_engine.connect() as conn:
        assert await run_on(conn, steps_repo.list_steps, record.run_id) == []


@zart.step("tx-unstorable", transactional=True)
async def unstorable(entry: str) -> Any:
    await zart.session().execute(ledger.insert().values(entry=entry))
    return object()


@zart.durable("tx-unstorable-flow")
async def unstorable_flow(data: dict[str, str]) -> str:
    outcome = await zart.step(unstorable(data["entry"]))
    return type(outcome).__name__


async def test_an_unstorable_result_rolls_back_the_steps_writes(
    shared: DurableScheduler, app_engine: AsyncEngine
) -> None:
    async with shared.run_worker(**FAST_WORKER):
        execution_id = await shared.start(unstorable_flow, {"entry": "lost"})
        with pytest.raises(zart.ExecutionFailed):
            await shared.wait(execution_id, timeout=20)

    assert await entries(app_engine) == []


@zart.step("tx-ends-its-own-transaction", transactional=True)
async def ends_its_own_transaction() -> None:
    await zart.session().execute(ledger.insert().values(entry="sneaky"))
    await zart.session().rollback()


@zart.durable("tx-ends-its-own-transaction-flow")
async def ends_its_own_transaction_flow() -> str:
    try:
        await ends_its_own_transaction()
    except zart.NoStepTransaction as exc:
        return str(exc)
    return "no error"


async def test_a_step_that_ends_its_transaction_itself_fails_clearly(
    shared: DurableScheduler, app_engine: AsyncEngine
) -> None:
    async with shared.run_worker(**FAST_WORKER):
        execution_id = await shared.start(ends_its_own_transaction_flow)
        message = await shared.wait(execution_id, timeout=20)

    assert "must not commit or roll back zart.session() itself" in message
    assert await entries(app_engine) == []


async def test_a_transactional_step_outside_an_execution_uses_the_given_session(
    app_engine: AsyncEngine,
) -> None:
    with pytest.raises(zart.NoStepTransaction, match="transactional=True"):
        await record_entry("no session")
    async with AsyncSession(app_engine) as session:
        with zart.use_session(session):
            assert await record_entry("unit test") == "unit test"
        await session.commit()

    assert await entries(app_engine) == ["unit test"]


# -- a schema of Zart's own, next to the application's tables ------------------------------


@pytest.mark.postgresql_only
async def test_zart_in_its_own_schema_leaves_the_applications_statements_alone(
    empty_database_url: str,
) -> None:
    engine = create_engine(empty_database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(app_metadata.create_all)  # the app's table, in public
        async with DurableScheduler(engine=engine, schema="durable") as scheduler:
            await scheduler.migrate()
            async with scheduler.run_worker(**SLOW_POLL):
                async with AsyncSession(engine) as session, session.begin():
                    await session.execute(ledger.insert().values(entry="before"))
                    execution_id = await scheduler.start(signup, {"email": "ada"}, session=session)
                    await session.execute(ledger.insert().values(entry="after"))
                assert await scheduler.wait(execution_id, timeout=20) == "welcome ada"

        async with engine.connect() as conn:
            found = await conn.scalars(text("SELECT entry FROM public.app_ledger ORDER BY id"))
            assert list(found) == ["before", "after", "welcome ada"]
            in_schema = await conn.scalar(text("SELECT count(*) FROM durable.zart_executions"))
            assert in_schema == 1
            public_zart = await conn.scalar(text("SELECT to_regclass('public.zart_executions')"))
            assert public_zart is None
    finally:
        await engine.dispose()


@pytest.mark.postgresql_only
async def test_enqueue_into_a_schema_of_its_own(empty_database_url: str) -> None:
    from sqlalchemy import create_engine as create_sync_engine
    from sqlalchemy.orm import Session

    engine = create_engine(empty_database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(app_metadata.create_all)
        async with DurableScheduler(engine=engine, schema="durable") as scheduler:
            await scheduler.migrate()

            def flask_view() -> str:
                sync_engine = create_sync_engine(sync_url(empty_database_url))
                try:
                    with Session(sync_engine) as session, session.begin():
                        execution_id = zart.enqueue(
                            session, signup, {"email": "ada"}, schema="durable"
                        )
                        session.execute(ledger.insert().values(entry="user ada"))
                    return execution_id
                finally:
                    sync_engine.dispose()

            execution_id = await asyncio.to_thread(flask_view)
            async with scheduler.run_worker(**FAST_WORKER):
                assert await scheduler.wait(execution_id, timeout=20) == "welcome ada"
        assert await entries(engine) == ["user ada", "welcome ada"]
    finally:
        await engine.dispose()
