"""The application's database: one engine, shared by its routes, Zart's scheduler and Zart's
worker process. Its URL is the application's own setting, ``APP_DATABASE_URL``: there is no
second one for Zart (``zart worker --app`` uses this engine)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from zart.database import create_engine

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///fastapi_app.db"


def create_app_engine(url: str | None = None) -> AsyncEngine:
    """The application's engine. ``zart.database.create_engine`` is SQLAlchemy's
    ``create_async_engine`` plus what Zart needs on SQLite (WAL, ``BEGIN IMMEDIATE``); pool
    options and ``connect_args`` go through as usual."""
    return create_engine(url or os.environ.get("APP_DATABASE_URL", DEFAULT_DATABASE_URL))


def session_dependency(engine: AsyncEngine) -> Callable[[], AsyncIterator[AsyncSession]]:
    """The FastAPI dependency giving each request a session of its own on ``engine``."""
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def get_session() -> AsyncIterator[AsyncSession]:
        async with sessions() as session:
            yield session

    return get_session
