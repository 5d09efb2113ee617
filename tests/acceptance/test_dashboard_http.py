"""The dashboard over HTTP (a real ASGI client, both backends): served at ``/`` by
``create_app`` and under any prefix by ``create_router(dashboard=True)``; with a token set, the
page, its assets and the API answer nothing useful until the sign-in form is given the token,
which sets an HttpOnly session cookie that is not the token (and never puts it in a URL);
cookie-only writes need the dashboard's header; every page carries a strict CSP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from zart import DurableScheduler
from zart.api import ApiSettings, create_app, create_router
from zart.api.dashboard import assets

TOKEN = "s3cret-dashboard-token"
ASSETS = ["app.js", "api.js", "ui.js", "app.css", "views/overview.js", "views/execution.js"]


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://zart")


@pytest.fixture
async def closed(scheduler: DurableScheduler) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(create_app(ApiSettings(api_token=TOKEN), scheduler=scheduler)) as client:
        yield client


async def _sign_in(client: httpx.AsyncClient, prefix: str = "") -> httpx.Response:
    answer = await client.post(f"{prefix}/dashboard/sign-in", data={"token": TOKEN})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"{prefix}/"
    return answer


async def test_without_signing_in_nothing_of_the_dashboard_is_served(
    closed: httpx.AsyncClient,
) -> None:
    page = await closed.get("/")
    assert page.status_code == 200
    assert 'name="token"' in page.text  # the sign-in form, and nothing else
    assert "<script" not in page.text
    assert "app.js" not in page.text
    assert "Executions" not in page.text
    for name in [*ASSETS, "logo.svg", "index.html", "nope.js"]:
        answer = await closed.get(f"/dashboard/{name}")
        assert answer.status_code == 401, name
        assert answer.json()["error"]["code"] == "unauthorized"
        assert "import" not in answer.text
    assert (await closed.get("/api/v1/stats")).status_code == 401
    # A session cookie not derived from this token opens nothing.
    closed.cookies.set("zart_session", "forged")
    assert (await closed.get("/dashboard/app.js")).status_code == 401
    assert "<script" not in (await closed.get("/")).text


async def test_a_wrong_or_missing_token_is_refused_with_the_form_again(
    closed: httpx.AsyncClient,
) -> None:
    wrong = await closed.post("/dashboard/sign-in", data={"token": "guess"})
    assert wrong.status_code == 401
    assert "is not this server" in wrong.text
    assert "set-cookie" not in wrong.headers
    empty = await closed.post("/dashboard/sign-in", data={"token": ""})
    assert empty.status_code == 401
    assert "ZART_API_TOKEN" in empty.text
    huge = await closed.post("/dashboard/sign-in", data={"token": "x" * 10_000})
    assert huge.status_code == 413
    assert (await closed.get("/dashboard/app.js")).status_code == 401


async def test_signing_in_sets_an_httponly_session_cookie_that_is_not_the_token(
    closed: httpx.AsyncClient,
) -> None:
    answer = await _sign_in(closed)
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("zart_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Max-Age" not in cookie
    assert "expires" not in cookie.lower()
    assert TOKEN not in cookie
    assert TOKEN not in answer.headers["location"]

    page = await closed.get("/")
    assert '<script type="module" src="/dashboard/app.js">' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'none'" in policy
    assert "unsafe-inline" not in policy
    assert TOKEN not in page.text
    for name in ASSETS:
        asset = await closed.get(f"/dashboard/{name}")
        assert asset.status_code == 200, name
        assert asset.content == assets()[name]
        assert asset.headers["x-content-type-options"] == "nosniff"
    assert (
        (await closed.get("/dashboard/app.js"))
        .headers["content-type"]
        .startswith("text/javascript")
    )
    missing = await closed.get("/dashboard/no-such.js")
    assert missing.status_code == 404
    assert (await closed.get("/api/v1/stats")).status_code == 200  # the API, by the cookie

    # A write on the cookie alone (what another site's form could send) is refused; the
    # dashboard's own calls carry its header.
    body = {"taskName": "nope", "payload": {}}
    assert (await closed.post("/api/v1/executions", json=body)).status_code == 401
    marked = await closed.post("/api/v1/executions", json=body, headers={"X-Zart-Dashboard": "1"})
    assert marked.status_code == 404  # past the gate: the task is unknown
    assert marked.json()["error"]["code"] == "unknown_task"

    signed_out = await closed.post("/dashboard/sign-out")
    assert signed_out.status_code == 303
    assert (await closed.get("/dashboard/app.js")).status_code == 401


async def test_the_bearer_token_opens_the_assets_too(closed: httpx.AsyncClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert (await closed.get("/dashboard/app.css", headers=auth)).status_code == 200
    assert "app.js" in (await closed.get("/", headers=auth)).text


async def test_mounted_under_a_prefix_by_create_router(scheduler: DurableScheduler) -> None:
    app = FastAPI()
    app.include_router(create_router(scheduler, api_token=TOKEN, dashboard=True), prefix="/ops")
    async with _client(app) as client:
        page = await client.get("/ops/")
        assert 'action="/ops/dashboard/sign-in"' in page.text
        assert (await client.get("/ops/dashboard/app.js")).status_code == 401
        answer = await _sign_in(client, "/ops")
        assert "Path=/ops/" in answer.headers["set-cookie"]
        page = await client.get("/ops/")
        assert '<meta name="zart-base" content="/ops">' in page.text
        assert (await client.get("/ops/dashboard/app.js")).status_code == 200
        assert (await client.get("/ops/api/v1/stats")).status_code == 200
    plain = FastAPI()
    plain.include_router(create_router(scheduler, api_token=TOKEN), prefix="/ops")
    async with _client(plain) as client:  # dashboard=False by default: not mounted
        assert (await client.get("/ops/")).status_code == 404


async def test_without_a_token_the_dashboard_is_served_at_once(
    scheduler: DurableScheduler,
) -> None:
    async with _client(create_app(ApiSettings(api_token=""), scheduler=scheduler)) as client:
        assert "app.js" in (await client.get("/")).text
        assert (await client.get("/dashboard/app.js")).status_code == 200
    settings = ApiSettings(api_token="", dashboard=False)
    async with _client(create_app(settings, scheduler=scheduler)) as client:
        assert (await client.get("/")).status_code == 404
