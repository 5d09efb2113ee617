"""``zart worker --app`` runs on the application's own ``DurableScheduler`` object: the engine
it built (its ``connect_args`` and pool options), the schema it names, the handlers its import
registers, and nothing from ``ZART_*``. Proved from outside, on PostgreSQL: the worker
process's connections carry the application's ``application_name``, and the execution it runs
lives in the application's schema."""

from __future__ import annotations

import os
import signal
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

import zart
from tests.processes import Process
from zart.database import create_engine

pytestmark = pytest.mark.postgresql_only

SCHEMA = "app_durable"

APP_MODULE = """
import os

from sqlalchemy.ext.asyncio import create_async_engine

import zart

engine = create_async_engine(
    os.environ["MY_APP_DATABASE_URL"],
    pool_size=2,
    max_overflow=1,
    connect_args={"server_settings": {"application_name": os.environ["MY_APP_NAME"]}},
)
scheduler = zart.DurableScheduler(engine=engine, schema="app_durable")


@zart.durable("app-object-greet")
async def greet(name: str) -> str:
    return f"hello {name}"
"""


async def _connections_named(url: str, name: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            count = await conn.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"),
                {"name": name},
            )
            return int(count or 0)
    finally:
        await engine.dispose()


async def test_the_worker_runs_on_the_apps_engine_and_schema(
    database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "my_app.py").write_text(APP_MODULE)
    name = f"my-app-{uuid.uuid4().hex[:8]}"
    async with zart.DurableScheduler(database_url, schema=SCHEMA) as ours:
        await ours.migrate()  # Zart's tables in the application's schema, nowhere else used
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
        env.update(
            MY_APP_DATABASE_URL=database_url,
            MY_APP_NAME=name,
            ZART_DATABASE_URL="postgresql+asyncpg://nobody@127.0.0.1:1/never",  # not read
            ZART_SCHEMA="public",  # nor this: the app's scheduler names its schema
        )
        worker = Process(
            [sys.executable, "-m", "zart", "worker", "--app", "my_app:scheduler"],
            cwd=tmp_path,
            env=env,
        )
        try:
            worker.wait_for("running app-object-greet")

            execution_id = await ours.start("app-object-greet", "ada")
            assert await ours.wait(execution_id, timeout=30) == "hello ada"

            assert (await ours.status(execution_id)).claim_count == 1  # by the worker process
            assert await _connections_named(database_url, name) >= 1  # its connect_args
        finally:
            assert worker.stop(signal.SIGTERM) == 0, worker.stderr
    async with zart.DurableScheduler(database_url) as public:
        assert (await public.list_executions()).total == 0  # nothing in the default schema
