"""examples/fastapi_app as its users run it: a request inserts a user and starts its
onboarding in one transaction; the workflow runs in the web process's own worker, or in a
real ``zart worker --app`` process on the application's engine; and the example's own pytest
suite passes on the application's tables (``durable_test_scheduler(engine=)``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

import zart
from examples.fastapi_app.app import create_app
from examples.fastapi_app.models import Credit, User
from tests.processes import Process
from zart.models import ExecutionRow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fastapi_app"


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without any ZART_* variable: the example needs none."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZART_", "APP_"))}
    return {**env, **extra}


async def test_a_signup_request_commits_the_user_and_its_workflow_together(
    database_url: str,
) -> None:
    app = create_app(database_url, run_worker=True)
    scheduler: zart.DurableScheduler = app.state.scheduler
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as http,
    ):
        created = await http.post("/users", json={"email": "ada@example.com"})
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["execution_id"] == f"onboarding-{body['id']}"

        result = await scheduler.wait(body["execution_id"], timeout=30)
        assert result == "ada@example.com onboarded with 10 credits"
        # Zart's HTTP API, mounted by the app, shows the same execution.
        through_api = await http.get(f"/api/v1/executions/{body['execution_id']}")
        assert through_api.status_code == 200, through_api.text
        assert through_api.json()["status"] == "completed"
        assert through_api.json()["result"] == "ada@example.com onboarded with 10 credits"
        user = await http.get(f"/users/{body['id']}")
        assert user.json() == {
            "id": body["id"],
            "email": "ada@example.com",
            "welcomed": True,
            "credits": 10,
        }

        # A duplicate e-mail is refused: no second user, nothing started.
        duplicate = await http.post("/users", json={"email": "ada@example.com"})
        assert duplicate.status_code == 409
        async with scheduler.engine.connect() as conn:
            users = await conn.scalar(select(func.count()).select_from(User))
            credits = await conn.scalar(select(func.count()).select_from(Credit))
            starts = await conn.scalar(select(func.count()).select_from(ExecutionRow))
        assert (users, credits, starts) == (1, 1, 1)


@pytest.fixture
def app_worker(database_url: str) -> Iterator[Process]:
    """``zart worker --app examples.fastapi_app.durable:scheduler`` with only the
    application's own setting, APP_DATABASE_URL: no ZART_DATABASE_URL."""
    worker = Process(
        [sys.executable, "-m", "zart", "worker", "--app", "examples.fastapi_app.durable:scheduler"],
        cwd=ROOT,
        env=environment(APP_DATABASE_URL=database_url),
    )
    try:
        worker.wait_for("running user-onboarding")  # "worker ... running ..." once it is up
        yield worker
    finally:
        worker.stop(signal.SIGTERM)


async def test_the_worker_process_runs_on_the_apps_scheduler(
    database_url: str, app_worker: Process
) -> None:
    app = create_app(database_url, run_worker=False)  # the web process: no worker of its own
    scheduler: zart.DurableScheduler = app.state.scheduler
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as http,
    ):
        assert scheduler.workers == ()
        created = await http.post("/users", json={"email": "grace@example.com"})
        assert created.status_code == 201, created.text
        execution_id = created.json()["execution_id"]

        result = await scheduler.wait(execution_id, timeout=30)

        assert result == "grace@example.com onboarded with 10 credits"
        record = await scheduler.status(execution_id)
        assert record.claim_count == 1  # claimed once, by the worker process
    assert app_worker.stop(signal.SIGTERM) == 0, app_worker.stderr
    assert "stopping: waiting for running executions" in app_worker.stderr


def test_the_examples_own_suite_passes_on_the_apps_tables(database_url: str) -> None:
    suite = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=EXAMPLE,
        env=environment(APP_TEST_DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert suite.returncode == 0, suite.stdout + suite.stderr
    assert "3 passed" in suite.stdout, suite.stdout
