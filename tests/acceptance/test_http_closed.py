"""The HTTP API closed to strangers and free of 500s: with a token, every route but the health
checks (docs included) answers 401 before the body is read, wherever the router is mounted; a
64 MiB body without a token costs a real server no memory; the inputs that once answered 500
answer a 4xx or 503 with the envelope and store nothing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

import zart
from tests.acceptance.test_cli_worker import ROOT
from tests.processes import Process, until_healthy
from zart import DurableScheduler
from zart.api import ApiSettings, create_app, create_router

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@zart.durable("closed-wait")
async def closed_wait(data: dict[str, int]) -> Any:
    return await zart.wait_for_event("go")


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://zart")


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    message: str = body["error"]["message"]
    return message


@pytest.fixture
async def closed(scheduler: DurableScheduler) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ApiSettings(api_token=TOKEN, max_body_bytes=4096), scheduler=scheduler)
    async with _client(app) as client:
        yield client


async def test_every_route_but_the_health_checks_needs_the_token(
    closed: httpx.AsyncClient, scheduler: DurableScheduler
) -> None:
    app = create_app(ApiSettings(api_token=TOKEN), scheduler=scheduler)
    routes = [
        (method.upper(), path.replace("{execution_id}", "x").replace("{event_name}", "e"))
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    ]
    routes = [(m, p.replace("{rule_id}", "r")) for m, p in routes]
    routes += [("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/redoc")]
    routes += [("GET", "/no-such-page"), ("POST", "/api/v1/executions/x/nope")]
    assert len(routes) > 18
    for method, path in routes:
        if path in ("/healthz", "/readyz"):
            assert (await closed.request(method, path)).status_code == 200
            continue
        answer = await closed.request(method, path, content=b'{"taskName": ')
        _error(answer, 401, "unauthorized")
        assert answer.headers["www-authenticate"] == "Bearer"

    document = (await closed.get("/openapi.json", headers=AUTH)).json()
    assert document["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
    }
    assert (await closed.get("/docs", headers=AUTH)).status_code == 200
    assert (await closed.get("/api/v1/executions", headers=AUTH)).json() == []


async def test_the_mounted_router_checks_the_token_before_it_reads_the_body(
    scheduler: DurableScheduler,
) -> None:
    app = FastAPI()
    app.include_router(create_router(scheduler, api_token=TOKEN, max_body_bytes=1024))
    async with _client(app) as client:
        malformed = {"content": b'{"taskName": ', "headers": {"content-type": "application/json"}}
        _error(await client.post("/api/v1/executions", **malformed), 401, "unauthorized")  # type: ignore[arg-type]
        big = b"x" * 5000
        _error(await client.post("/api/v1/executions", content=big), 401, "unauthorized")
        # With the token: the body is bounded, then parsed.
        headers = {**AUTH, "content-type": "application/json"}
        _error(
            await client.post("/api/v1/executions", content=big, headers=headers),
            413,
            "payload_too_large",
        )
        _error(
            await client.post("/api/v1/executions", content=b'{"taskName": ', headers=headers),
            422,
            "validation_error",
        )
        listed = await client.get("/api/v1/executions", headers=AUTH)
        assert listed.json() == []


async def test_create_app_reads_the_token_from_the_environment(
    scheduler: DurableScheduler, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    monkeypatch.setenv("ZART_API_TOKEN", TOKEN)
    app = create_app(ApiSettings(database_url=database_url), scheduler=scheduler)
    async with _client(app) as client:
        _error(await client.get("/api/v1/stats"), 401, "unauthorized")
        assert (await client.get("/api/v1/stats", headers=AUTH)).status_code == 200
    opened = create_app(ApiSettings(database_url=database_url, api_token=""), scheduler=scheduler)
    async with _client(opened) as client:  # "" turns auth off explicitly
        assert (await client.get("/api/v1/stats")).status_code == 200


# -- a real server and a 64 MiB body --------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture
def server(database_url: str) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    env["ZART_API_TOKEN"] = TOKEN
    port = _free_port()
    process = Process(
        [
            *[sys.executable, "-m", "zart", "serve", "tests.acceptance.test_http_closed"],
            *["--port", str(port), "--database-url", database_url],
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        until_healthy(process, f"http://127.0.0.1:{port}")
        yield port, process.popen
    finally:
        process.stop(signal.SIGTERM)


def _post_unauthenticated(port: int, size: int) -> bytes:
    """POST ``size`` bytes without a token on a raw socket; the server's answer."""
    chunk = b" " * (1 << 20)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(
            b"POST /api/v1/executions HTTP/1.1\r\nHost: zart\r\n"
            b"Content-Type: application/json\r\n" + f"Content-Length: {size}\r\n\r\n".encode()
        )
        try:
            for _ in range(size // len(chunk)):
                sock.sendall(chunk)
        except OSError:  # the server answered and closed without reading it all: fine
            pass
        answer = b""
        try:
            while b"\r\n\r\n" not in answer:
                got = sock.recv(65536)
                if not got:
                    break
                answer += got
        except OSError:
            pass
        return answer


def test_a_64_mib_body_without_a_token_gets_401_unread(
    server: tuple[int, subprocess.Popen[str]],
) -> None:
    port, process = server
    for _ in range(3):  # warm up: the first requests load what a request needs
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/stats").status_code == 401
    before = _rss_kib(process.pid)
    answer = _post_unauthenticated(port, 64 << 20)
    after = _rss_kib(process.pid)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert after - before < 8 * 1024, f"the server grew by {after - before} KiB"


# -- no 500s ---------------------------------------------------------------------------------


async def test_times_beyond_the_calendar_in_utc_are_refused(closed: httpx.AsyncClient) -> None:
    for bound in ("from", "to"):
        message = _error(
            await closed.get(
                "/api/v1/executions", params={bound: "0001-01-01T00:00:00+14:00"}, headers=AUTH
            ),
            422,
            "validation_error",
        )
        assert "out of range" in message
    message = _error(
        await closed.post(
            "/zart/admin/v1/pause",
            json={"taskName": "t", "expiresAt": "9999-12-31T23:59:59-14:00"},
            headers=AUTH,
        ),
        422,
        "validation_error",
    )
    assert "out of range" in message
    assert (await closed.get("/zart/admin/v1/pause", headers=AUTH)).json() == []


async def test_an_event_nested_too_deeply_is_refused_and_not_stored(
    closed: httpx.AsyncClient, scheduler: DurableScheduler
) -> None:
    await scheduler.start(closed_wait, {"a": 1}, execution_id="deep-1")
    deep: Any = 1
    for _ in range(300):
        deep = [deep]
    answer = await closed.post(
        "/api/v1/events/deep-1/go",
        content=json.dumps(deep).encode(),
        headers={**AUTH, "content-type": "application/json"},
    )
    assert 400 <= answer.status_code < 500, answer.text
    assert set(answer.json()) == {"error"}
    # Nothing stored: a plain event is still accepted.
    assert (await closed.post("/api/v1/events/deep-1/go", json=1, headers=AUTH)).status_code == 202


@pytest.mark.postgresql_only
async def test_a_database_refusing_our_role_is_503_on_every_route(database_url: str) -> None:
    refused = make_url(database_url).set(username="no_such_role", password="wrong")
    url = refused.render_as_string(hide_password=False)
    async with DurableScheduler(url) as scheduler:
        app = create_app(ApiSettings(api_token=""), scheduler=scheduler)
        async with _client(app) as client:
            _error(await client.get("/readyz"), 503, "database_unavailable")
            for path in ("/api/v1/stats", "/api/v1/executions", "/api/v1/executions/x"):
                _error(await client.get(path), 503, "database_unavailable")
            _error(
                await client.post(
                    "/api/v1/executions", json={"taskName": "closed-wait", "payload": {"a": 1}}
                ),
                503,
                "database_unavailable",
            )


async def test_an_execution_id_or_event_name_with_a_slash_is_refused_at_the_door(
    closed: httpx.AsyncClient, scheduler: DurableScheduler
) -> None:
    message = _error(
        await closed.post(
            "/api/v1/executions",
            json={"executionId": "a/b", "taskName": "closed-wait", "payload": {"a": 1}},
            headers=AUTH,
        ),
        422,
        "invalid_payload",
    )
    assert "'/'" in message
    assert (await closed.get("/api/v1/executions", headers=AUTH)).json() == []
    with pytest.raises(zart.InvalidPayload, match="'/'"):
        await scheduler.start(closed_wait, {"a": 1}, execution_id="x/y")
    await scheduler.start(closed_wait, {"a": 1}, execution_id="slash-1")
    with pytest.raises(zart.InvalidPayload, match="'/'"):
        await scheduler.offer_event("slash-1", "go/now", 1)
    assert (await scheduler.status("slash-1")).status.value == "scheduled"
