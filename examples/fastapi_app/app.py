"""The HTTP application: ``POST /users`` inserts a user and starts its onboarding in the same
transaction; a worker runs in the application's lifespan, on the application's engine.

    uvicorn examples.fastapi_app.app:create_app --factory     # from the repository root

The database is ``APP_DATABASE_URL`` (default: the SQLite file ``fastapi_app.db``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

import zart
from zart.api import create_router
from zart.database import create_engine

from .models import Base, Credit, User
from .workflows import Signup, onboarding

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///fastapi_app.db"


class NewUser(BaseModel):
    email: str


class CreatedUser(BaseModel):
    id: int
    email: str
    execution_id: str


class UserView(BaseModel):
    id: int
    email: str
    welcomed: bool
    credits: int


def create_app(database_url: str | None = None) -> FastAPI:
    """Assemble the application on one engine that the application and Zart share."""
    engine = create_engine(database_url or os.environ.get("APP_DATABASE_URL", DEFAULT_DATABASE_URL))
    scheduler = zart.DurableScheduler(engine=engine)  # Zart borrows the app's pool
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await scheduler.migrate()  # Zart's tables (zart_*), with their own version table
        async with engine.begin() as conn:  # a real app runs its own alembic here
            await conn.run_sync(Base.metadata.create_all)
        try:
            async with scheduler.run_worker(task_names=[onboarding.name]):
                yield
        finally:
            await scheduler.close()
            await engine.dispose()

    app = FastAPI(title="Zart FastAPI example", lifespan=lifespan)
    app.state.scheduler = scheduler

    @app.post("/users", status_code=201)
    async def create_user(new: NewUser) -> CreatedUser:
        """Insert the user and start its onboarding in one transaction: both or neither."""
        try:
            async with sessions() as session, session.begin():
                user = User(email=new.email)
                session.add(user)
                await session.flush()  # the user's id, for the workflow's input
                execution_id = await scheduler.start(
                    onboarding,
                    Signup(user_id=user.id, email=user.email),
                    execution_id=f"onboarding-{user.id}",
                    session=session,
                )
        except IntegrityError:
            raise HTTPException(409, f"a user with e-mail {new.email!r} exists") from None
        # Committed: the worker was woken at the commit and is onboarding the user already.
        return CreatedUser(id=user.id, email=user.email, execution_id=execution_id)

    @app.get("/users/{user_id}")
    async def get_user(user_id: int) -> UserView:
        async with sessions() as session:
            user = await session.get(User, user_id)
            if user is None:
                raise HTTPException(404, f"no user {user_id}")
            credits = await session.scalar(
                select(func.coalesce(func.sum(Credit.amount), 0)).where(Credit.user_id == user_id)
            )
        return UserView(id=user.id, email=user.email, welcomed=user.welcomed, credits=credits or 0)

    # Zart's HTTP API (executions, events, stats, admin operations) beside the app's routes;
    # protect it with api_token= (or ZART_API_TOKEN with zart serve) outside a demo.
    # At the root, the original Zart clients and admin UI find it where they expect it.
    app.include_router(create_router(scheduler))
    return app
