"""``zart serve`` through its entry point: a real server process that answers health checks
and runs executions with ``--with-worker``, and the refusal of a public bind without a token."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from examples.fastapi_app.database import create_app_engine
from examples.fastapi_app.models import Base, User
from tests.acceptance.test_cli_worker import ROOT, zart
from tests.processes import Process, until_healthy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def served(arguments: list[str], env: dict[str, str]) -> Iterator[str]:
    """``zart serve ARGUMENTS --port N`` until it answers; its base URL."""
    port = _free_port()
    process = Process(
        [sys.executable, "-m", "zart", "serve", *arguments, "--port", str(port)], cwd=ROOT, env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        until_healthy(process, base)
        yield base
    finally:
        process.stop(signal.SIGTERM)


@pytest.fixture
def server(database_url: str) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    env["ZART_API_TOKEN"] = "t0ken"
    arguments = ["tests.acceptance.crash_flow", "--with-worker", "--database-url", database_url]
    yield from served(arguments, env)


def test_serve_app_serves_the_applications_scheduler(database_url: str) -> None:
    """``--app``: the application's engine (APP_DATABASE_URL) and handlers, no ZART_* at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZART_", "APP_"))}
    env["APP_DATABASE_URL"] = database_url
    arguments = ["--app", "examples.fastapi_app.durable:scheduler", "--with-worker"]
    asyncio.run(_application_tables_with_a_user(database_url))
    for base in served(arguments, env):
        assert httpx.get(f"{base}/readyz").text == "ok"
        started = httpx.post(
            f"{base}/api/v1/executions",
            json={"taskName": "user-onboarding", "payload": {"user_id": 1, "email": "a@b.c"}},
        )
        assert started.status_code == 201, started.text
        execution_id = started.json()["durableExecutionId"]
        finished = httpx.get(
            f"{base}/api/v1/executions/{execution_id}/wait", params={"timeoutSecs": 30}, timeout=40
        )
        assert finished.json()["status"] == "completed", finished.text
        assert finished.json()["result"] == "a@b.c onboarded with 10 credits"


async def _application_tables_with_a_user(database_url: str) -> None:
    engine = create_app_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
            await conn.execute(User.__table__.insert().values(id=1, email="a@b.c"))
    finally:
        await engine.dispose()


def test_serve_answers_health_checks_and_runs_executions(server: str, tmp_path: Path) -> None:
    auth = {"Authorization": "Bearer t0ken"}
    assert httpx.get(f"{server}/healthz").text == "ok"
    assert httpx.get(f"{server}/readyz").text == "ok"
    assert httpx.get(f"{server}/api/v1/stats").status_code == 401

    journal = tmp_path / "journal.txt"
    started = httpx.post(
        f"{server}/api/v1/executions",
        json={"taskName": "crash-flow", "payload": {"journal": str(journal)}},
        headers=auth,
    )
    assert started.status_code == 201, started.text
    execution_id = started.json()["durableExecutionId"]
    done = httpx.get(
        f"{server}/api/v1/executions/{execution_id}/wait",
        params={"timeoutSecs": 30},
        headers=auth,
        timeout=40,
    )
    assert done.json()["status"] == "completed"
    assert httpx.get(f"{server}/openapi.json", headers=auth).json()["info"]["title"] == "Zart"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "example.com"])
def test_serve_refuses_a_public_bind_without_a_token(host: str) -> None:
    result = zart("serve", "tests.acceptance.crash_flow", "--host", host)

    assert result.returncode == 1
    assert result.stderr.startswith(f"error: refusing to serve on {host} without ZART_API_TOKEN")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("with_worker", [[], ["--with-worker"]])
def test_serve_refuses_a_database_without_zarts_tables(
    empty_database_url: str, with_worker: list[str]
) -> None:
    """Checked once before the server starts: one error line, not a worker's traceback in
    uvicorn's lifespan, nor a server whose every route answers 503."""
    if empty_database_url.startswith("sqlite"):  # a file, with no table in it
        Path(empty_database_url.removeprefix("sqlite+aiosqlite:///")).touch()
    result = zart(
        "serve", "tests.acceptance.crash_flow", *with_worker, "--database-url", empty_database_url
    )

    assert result.returncode == 1
    assert result.stderr.startswith("error: Zart's tables are missing from "), result.stderr
    assert "`zart db upgrade` or `await scheduler.migrate()`" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_and_worker_refuse_a_sqlite_file_that_does_not_exist(
    tmp_path: Path, command: str
) -> None:
    missing = tmp_path / "never-created.db"

    result = zart(
        command, "tests.acceptance.crash_flow", "--database-url", f"sqlite+aiosqlite:///{missing}"
    )

    assert result.returncode == 1
    assert (
        result.stderr == f"error: no SQLite database at {missing}; `zart db upgrade` creates one\n"
    )
    assert not missing.exists()


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_worker_and_serve_refuse_tables_an_older_zart_made(
    empty_database_url: str, command: str
) -> None:
    """A database at a revision before this Zart's head (a deploy that skipped `zart db
    upgrade`) is refused at start, in one line naming both revisions, and left as it is."""
    from alembic.script import ScriptDirectory

    from zart.migrations import alembic_config, head_revision

    head = head_revision()
    previous = ScriptDirectory.from_config(alembic_config()).get_revision(head).down_revision
    assert isinstance(previous, str)
    migrated = zart("db", "upgrade", previous, "--database-url", empty_database_url)
    assert migrated.returncode == 0, migrated.stderr

    result = zart(command, "tests.acceptance.crash_flow", "--database-url", empty_database_url)

    assert result.returncode == 1
    assert result.stderr.startswith("error: Zart's tables in "), result.stderr
    assert f"(at revision {previous}, this Zart needs {head})" in result.stderr
    assert "`zart db upgrade` or `await scheduler.migrate()`" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    still = zart("db", "check", "--database-url", empty_database_url)  # left as it was
    assert still.returncode == 1
    assert previous in still.stdout + still.stderr
