"""``zart worker --wait-for-database``: a worker (or ``zart serve``) started while its
PostgreSQL is down waits for it, retrying, instead of exiting; once the server is up it
serves as usual. Without the option it exits at once with one error line; with it, a
database that answers with a problem (no tables) is still reported at once, and a wait that
runs out ends in the same one error line."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import zart
from tests.acceptance.restart_flow import restart_flow
from tests.pg_server import PostgresServer, start_postgres
from tests.processes import Process
from zart.database import create_engine
from zart.migrations import upgrade

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    """A server of this test's own: stopping the suite's would cut every other test off."""
    try:
        server = start_postgres()
    except RuntimeError as exc:  # no server binaries here
        pytest.skip(f"needs a PostgreSQL it can stop and start: {exc}")
    try:
        server.create_database("zart")
        server.create_database("empty")
        yield server
    finally:
        server.stop()


def zart_command(*args: str) -> Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    return Process([sys.executable, "-m", "zart", *args], cwd=ROOT, env=env)


def wait_for_exit(process: Process, guard: float = 60) -> int:
    """The exit code once ``process`` ended by itself (a guard against a hang)."""
    give_up = time.monotonic() + guard
    while process.alive():
        assert time.monotonic() < give_up, f"still running:\n{process.stderr}"
        time.sleep(0.05)
    return process.stop()


async def test_a_worker_started_while_the_database_is_down_waits_and_then_runs(
    server: PostgresServer, tmp_path: Path
) -> None:
    url = server.url("zart")
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    async with zart.DurableScheduler(url) as scheduler:
        execution_id = await scheduler.start(
            restart_flow, {"journal": str(tmp_path / "journal.log"), "pause": 0}
        )

    await asyncio.to_thread(server.down)
    worker = zart_command(
        "worker", "tests.acceptance.restart_flow", "--database-url", url,
        "--wait-for-database", "2m", "--poll-interval", "0.2",
    )  # fmt: skip
    try:
        waiting = await asyncio.to_thread(worker.wait_for, "database_waiting")
        assert "retrying for up to 2m" in waiting
        assert worker.alive()
        await asyncio.to_thread(server.up)
        await asyncio.to_thread(worker.wait_for, "database_reached")
        async with zart.DurableScheduler(url) as scheduler:
            result = await scheduler.wait(execution_id, timeout=60)
        assert len(result) == 10
        assert worker.alive()
    finally:
        worker.stop()
    assert worker.stderr.count("database_waiting") == 1  # said once, not at every try


async def test_without_the_option_a_worker_on_a_stopped_database_exits_at_once(
    server: PostgresServer,
) -> None:
    await asyncio.to_thread(server.down)
    worker = zart_command(
        "worker", "tests.acceptance.restart_flow", "--database-url", server.url("zart")
    )
    code = await asyncio.to_thread(wait_for_exit, worker)

    assert code == 1
    assert worker.stderr.startswith("error: cannot connect to postgresql+asyncpg://")
    assert "database_waiting" not in worker.stderr


async def test_a_wait_that_runs_out_is_the_one_error_line(server: PostgresServer) -> None:
    await asyncio.to_thread(server.down)
    serve = zart_command(
        "serve", "tests.acceptance.restart_flow", "--database-url", server.url("zart"),
        "--port", "0", "--wait-for-database", "1s",
    )  # fmt: skip
    code = await asyncio.to_thread(wait_for_exit, serve)

    assert code == 1
    lines = serve.stderr.strip().splitlines()
    assert "database_waiting" in lines[0]
    assert lines[-1].startswith("error: cannot connect to postgresql+asyncpg://")


async def test_a_database_that_answers_without_tables_is_reported_at_once(
    server: PostgresServer,
) -> None:
    worker = zart_command(
        "worker", "tests.acceptance.restart_flow", "--database-url", server.url("empty"),
        "--wait-for-database", "2m",
    )  # fmt: skip
    code = await asyncio.to_thread(wait_for_exit, worker)  # not after two minutes

    assert code == 1
    assert "zart db upgrade" in worker.stderr
    assert "database_waiting" not in worker.stderr


@pytest.mark.parametrize("value", ["soon", "-5s"])
def test_a_bad_wait_is_refused_naming_the_option(value: str) -> None:
    worker = zart_command(
        "worker", "tests.acceptance.restart_flow",
        "--database-url", "postgresql+asyncpg://postgres@127.0.0.1:1/none",
        "--wait-for-database", value,
    )  # fmt: skip
    code = wait_for_exit(worker)

    assert code == 1
    assert worker.stderr.startswith("error: ")
    assert "--wait-for-database" in worker.stderr
    assert "cannot connect" not in worker.stderr
