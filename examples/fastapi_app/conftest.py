"""The application's test fixtures: its own test database with its own tables, and Zart on
that very engine (``zart.pytest_plugin``'s ``zart_scheduler`` uses ``zart_engine``)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from examples.fastapi_app.database import create_app_engine
from examples.fastapi_app.models import Base

pytest_plugins = ["zart.pytest_plugin"]


@pytest.fixture
async def zart_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """The application's engine on its test database (``APP_TEST_DATABASE_URL``, else a
    SQLite file per test), with the application's tables created (a real suite may run its
    alembic here instead) and emptied after each test."""
    url = os.environ.get("APP_TEST_DATABASE_URL") or f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    engine = create_app_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    try:
        yield engine
    finally:
        async with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                await conn.execute(table.delete())
        await engine.dispose()
