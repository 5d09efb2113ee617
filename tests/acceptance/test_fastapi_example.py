"""examples/fastapi_app driven over HTTP (ASGI, its lifespan running its worker): a request
inserts a user and starts its onboarding in one transaction, and the workflow finishes."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

import zart
from examples.fastapi_app.app import create_app
from examples.fastapi_app.models import Credit, User
from zart.models import ExecutionRow


async def test_a_signup_request_commits_the_user_and_its_workflow_together(
    database_url: str,
) -> None:
    app = create_app(database_url)
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
