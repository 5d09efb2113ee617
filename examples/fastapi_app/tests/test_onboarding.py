"""The onboarding workflow, tested as the application tests it: on its own engine and
tables, with Zart's ``zart_scheduler`` fixture (a fake clock, an in-process worker)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import zart
from examples.fastapi_app.models import Credit, User
from examples.fastapi_app.workflows import WELCOME_CREDIT, Signup, onboarding
from zart.testing import run_to_completion


async def test_a_signup_grants_the_welcome_credit_once(
    zart_engine: AsyncEngine, zart_scheduler: zart.DurableScheduler
) -> None:
    async with AsyncSession(zart_engine) as session, session.begin():
        user = User(email="ada@example.com")
        session.add(user)
        await session.flush()
        user_id = user.id
        execution_id = await zart_scheduler.start(
            onboarding, Signup(user_id=user_id, email=user.email), session=session
        )
    # Committed: the user and its onboarding together.

    summary = await run_to_completion(zart_scheduler, execution_id)

    assert summary == f"ada@example.com onboarded with {WELCOME_CREDIT} credits"
    async with AsyncSession(zart_engine) as session:
        credits = await session.scalars(select(Credit.amount))
        assert list(credits) == [WELCOME_CREDIT]  # the transactional step wrote the app's table
        welcomed = await session.scalar(select(User.welcomed).where(User.id == user_id))
        assert welcomed is True


async def test_a_rolled_back_signup_starts_nothing(
    zart_engine: AsyncEngine, zart_scheduler: zart.DurableScheduler
) -> None:
    async with AsyncSession(zart_engine) as session:
        user = User(email="bob@example.com")
        session.add(user)
        await session.flush()
        await zart_scheduler.start(
            onboarding, Signup(user_id=user.id, email=user.email), session=session
        )
        await session.rollback()  # the request failed after the start: neither is kept

    assert (await zart_scheduler.list_executions()).total == 0
    async with AsyncSession(zart_engine) as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 0


async def test_each_test_starts_with_no_executions(zart_scheduler: zart.DurableScheduler) -> None:
    assert (await zart_scheduler.list_executions()).total == 0
