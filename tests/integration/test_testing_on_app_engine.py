"""zart.testing on the application's engine: its tables are there for transactional steps,
each block starts with Zart's tables empty, and declared cron schedules fire only in a test
that asks, at once, with the execution they start in hand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import String, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import zart
from zart.errors import ConfigurationError
from zart.runtime.registry import unregister
from zart.testing import clock_of, durable_test_scheduler, fire_schedules, run_to_completion


class AppBase(DeclarativeBase):
    pass


class Order(AppBase):
    __tablename__ = "testing_orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(String(20))


@pytest.fixture
async def app_engine(engine: AsyncEngine) -> AsyncEngine:
    """The suite's fresh database as an application's engine, with the application's table."""
    async with engine.begin() as conn:
        await conn.run_sync(AppBase.metadata.create_all)
    return engine


@zart.step("testing-mark-paid", transactional=True)
async def mark_paid(order_id: int) -> str:
    order = await zart.session().get(Order, order_id)
    assert order is not None
    order.state = "paid"
    return order.state


@zart.durable("testing-pay-order")
async def pay_order(order_id: int) -> str:
    await zart.sleep("settle", timedelta(days=2))
    return await mark_paid(order_id)


async def test_a_transactional_step_writes_the_apps_table_through_its_engine(
    app_engine: AsyncEngine,
) -> None:
    async with app_engine.begin() as conn:
        await conn.execute(Order.__table__.insert().values(id=7, state="pending"))

    async with durable_test_scheduler(engine=app_engine) as scheduler:
        execution_id = await scheduler.start(pay_order, 7)
        assert await run_to_completion(scheduler, execution_id) == "paid"

    async with app_engine.connect() as conn:  # the engine is the app's: still open
        assert await conn.scalar(select(Order.state).where(Order.id == 7)) == "paid"


async def test_each_block_starts_with_zarts_tables_empty(app_engine: AsyncEngine) -> None:
    async with app_engine.begin() as conn:
        await conn.execute(Order.__table__.insert().values(id=1, state="pending"))
    async with durable_test_scheduler(engine=app_engine) as first:
        earlier = await first.start(pay_order, 1)
        assert (await first.list_executions()).total == 1

    async with durable_test_scheduler(engine=app_engine) as second:
        assert (await second.list_executions()).total == 0
        with pytest.raises(zart.ExecutionNotFound):
            await second.status(earlier)
    async with app_engine.connect() as conn:  # the application's rows are its own business
        assert await conn.scalar(select(Order.state).where(Order.id == 1)) == "pending"


@pytest.fixture
def nightly() -> AsyncIterator[zart.DurableHandler[[], str]]:
    """A handler with a declared schedule, registered for one test only (every worker of
    the suite would otherwise store and fire it)."""

    @zart.durable("testing-nightly", schedule="0 3 * * *")
    async def nightly_report() -> str:
        fired = zart.context().fire_time
        assert fired is not None
        return f"report for {fired:%Y-%m-%d %H:%M}"

    yield nightly_report
    unregister("testing-nightly")


async def test_declared_schedules_do_not_fire_in_a_test_that_does_not_ask(
    app_engine: AsyncEngine, nightly: zart.DurableHandler[[], str]
) -> None:
    async with durable_test_scheduler(engine=app_engine) as scheduler:
        assert await scheduler.list_schedules() == []
        execution_id = await scheduler.start(pay_order, 99)  # two days pass on the clock
        with pytest.raises(zart.ExecutionFailed):  # no order 99: the step fails, that is all
            await run_to_completion(scheduler, execution_id)
        assert clock_of(scheduler).now() >= zart.testing.DEFAULT_START + timedelta(days=2)
        assert [r.task_name for r in (await scheduler.list_executions()).items] == [
            "testing-pay-order"
        ]
        assert await fire_schedules(scheduler) == []


async def test_a_fired_schedules_execution_is_awaited_directly(
    app_engine: AsyncEngine, nightly: zart.DurableHandler[[], str]
) -> None:
    async with durable_test_scheduler(engine=app_engine, schedules=[nightly.name]) as scheduler:
        schedule = await scheduler.get_schedule(nightly.name)
        assert schedule.next_fire_at is not None

        [execution_id] = await fire_schedules(scheduler)

        assert clock_of(scheduler).now() == schedule.next_fire_at
        assert await run_to_completion(scheduler, execution_id) == "report for 2030-01-01 03:00"
        # After moving the clock by hand, the schedule due then fires as well.
        clock_of(scheduler).advance(timedelta(days=1))
        [next_day] = await fire_schedules(scheduler)
        assert await run_to_completion(scheduler, next_day) == "report for 2030-01-02 03:00"


async def test_asking_for_an_unknown_schedule_is_an_error(app_engine: AsyncEngine) -> None:
    with pytest.raises(ConfigurationError, match="no durable handler 'nope' with a declared"):
        async with durable_test_scheduler(engine=app_engine, schedules=["nope"]):
            pass
