"""Names over HTTP (issue 13): a start or an event whose execution id, task name or event name
is longer than its column or holds NUL or a lone surrogate is a 422 in the error envelope,
naming the problem, and stores nothing (both backends)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

import zart
from zart import DurableScheduler
from zart.api import ApiSettings, create_app


@zart.durable("http-names-approval")
async def approval() -> str:
    decision = await zart.wait_for_event("approval")
    return str(decision)


@pytest.fixture
async def client(scheduler: DurableScheduler) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ApiSettings(), scheduler=scheduler)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://zart") as client:
        yield client


BAD = {"too long": "x" * 300, "NUL": "a\x00b", "lone surrogate": "caf\ud800"}


def _refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "validation_error"
    assert body["error"]["message"].startswith(f"{field}: ")


async def _post_json(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> httpx.Response:
    # json.dumps escapes a lone surrogate as \\ud800 (httpx would fail to encode it raw)
    content = json.dumps(body).encode()
    return await client.post(url, content=content, headers={"content-type": "application/json"})


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD)
async def test_a_start_with_a_bad_execution_id_or_task_name_is_422_and_stores_nothing(
    client: httpx.AsyncClient, scheduler: DurableScheduler, bad: str
) -> None:
    for body, field in (
        ({"executionId": bad, "taskName": "http-names-approval"}, "executionId"),
        ({"executionId": "never-stored", "taskName": bad}, "taskName"),
    ):
        _refused(await _post_json(client, "/api/v1/executions", body), field)
    assert (await scheduler.list_executions()).total == 0


# A URL cannot carry a lone surrogate: its UTF-8 bytes are invalid, and the server reads them
# as U+FFFD (a valid name) before Zart sees the path.
IN_PATH = {name: BAD[name] for name in ("too long", "NUL")}


@pytest.mark.parametrize("bad", IN_PATH.values(), ids=IN_PATH)
async def test_an_event_with_a_bad_name_or_execution_id_is_422_and_stores_nothing(
    client: httpx.AsyncClient, scheduler: DurableScheduler, bad: str
) -> None:
    execution_id = await scheduler.start(approval)
    segment = quote(bad, safe="")
    for url, field in (
        (f"/api/v1/events/{execution_id}/{segment}", "path.event_name"),
        (f"/api/v1/events/{segment}/approval", "path.execution_id"),
    ):
        _refused(await client.post(url, json={"ok": True}), field)
    detail = await scheduler.execution_detail(execution_id)
    assert detail.events == ()
