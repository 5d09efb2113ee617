"""The HTTP application: ``POST /users`` inserts a user and starts its onboarding in the same
transaction, through the request's own session.

    uvicorn examples.fastapi_app.app:create_app --factory     # from the repository root
    zart worker --app examples.fastapi_app.durable:scheduler  # the worker, on the same engine

The database is ``APP_DATABASE_URL`` (default: the SQLite file ``fastapi_app.db``). With
``APP_RUN_WORKER=1`` the web process runs a worker itself (one process for a demo).
"""

# No `from __future__ import annotations` here: FastAPI reads the routes' annotations, and
# the dependencies they name (Session, Durable) are local to create_app.
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

import zart.api

from .database import create_app_engine, session_dependency
from .durable import scheduler_for
from .models import Base, Credit, User
from .workflows import Signup, onboarding


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


def create_app(database_url: str | None = None, *, run_worker: bool | None = None) -> FastAPI:
    """Assemble the application on one engine that the application and Zart share."""
    engine = create_app_engine(database_url)
    scheduler = scheduler_for(engine)  # Zart borrows the app's engine and pool
    if run_worker is None:
        run_worker = os.environ.get("APP_RUN_WORKER") == "1"
    zart_lifespan = zart.api.lifespan(scheduler, migrate=True, worker=run_worker)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with engine.begin() as conn:  # a real app runs its own alembic here
            await conn.run_sync(Base.metadata.create_all)
        try:
            async with zart_lifespan(app):  # zart_* tables, the worker if asked, the close
                yield
        finally:
            await engine.dispose()

    get_session = session_dependency(engine)
    Session = Annotated[AsyncSession, Depends(get_session)]
    Durable = Annotated[
        zart.api.SessionScheduler, Depends(zart.api.session_scheduler(scheduler, get_session))
    ]

    app = FastAPI(title="Zart FastAPI example", lifespan=lifespan)
    app.state.scheduler = scheduler

    @app.post("/users", status_code=201)
    async def create_user(new: NewUser, session: Session, durable: Durable) -> CreatedUser:
        """Insert the user and start its onboarding in one transaction: both or neither."""
        try:
            user = User(email=new.email)
            session.add(user)
            await session.flush()  # the user's id, for the workflow's input
            execution_id = await durable.start(  # in the request's session
                onboarding,
                Signup(user_id=user.id, email=user.email),
                execution_id=f"onboarding-{user.id}",
            )
            await session.commit()
        except IntegrityError:
            raise HTTPException(409, f"a user with e-mail {new.email!r} exists") from None
        # Committed: the workers were woken at the commit and onboard the user already.
        return CreatedUser(id=user.id, email=user.email, execution_id=execution_id)

    @app.get("/users/{user_id}")
    async def get_user(user_id: int, session: Session) -> UserView:
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
    app.include_router(zart.api.create_router(scheduler))
    return app
