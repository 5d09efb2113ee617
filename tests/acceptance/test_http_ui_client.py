"""The original Zart admin UI's client, replayed: every route it calls, with the exact queries
and headers it sends (DESIGN section 4, "What the original's admin UI sends and expects"), each
answer checked against the UI's TypeScript types (a plain array for the list with the total in
``X-Total-Count``, string errors, string ``stepId``, a JSON body on every answer but 204,
``createdBy`` on pause rules), CORS preflights for the origin allowed, and step times in the
order they happened. A real ASGI client against a real database, both backends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

import zart
from tests.integration.runtime_helpers import FAST_WORKER
from zart import DurableScheduler
from zart.api import ApiSettings, create_app

ORIGIN = "http://localhost:5173"
#: What every call of the UI sends (a browser preflights it: the content type is not "simple").
UI_HEADERS = {"Content-Type": "application/json", "Origin": ORIGIN}
UI_STATUSES = {"scheduled", "running", "completed", "failed", "cancelled"}

#: execution ids whose "ui-charge" step fails
declining: set[str] = set()
flaky_tries: dict[str, int] = {}


@zart.step("ui-flaky", retry="fixed(2, 1ms)")
async def flaky() -> str:
    execution_id = zart.context().execution_id
    flaky_tries[execution_id] = flaky_tries.get(execution_id, 0) + 1
    if flaky_tries[execution_id] == 1:
        raise ConnectionError("psp unreachable")
    return "ok"


@zart.step("ui-charge")
async def charge(amount: int) -> int:
    if zart.context().execution_id in declining:
        raise ValueError("card declined")
    return amount


@zart.durable("ui-order")
async def ui_order(data: dict[str, int]) -> int:
    await flaky()
    return await charge(data["amount"])


@zart.durable("ui-approval")
async def ui_approval(data: dict[str, int]) -> str:
    decision = await zart.wait_for_event("approval")
    return str(decision["answer"])


# -- the UI's types (`?`: string or null) ---------------------------------------------------

EXECUTION = {
    "name": "string",
    "durableExecutionId": "string",
    "payload": "any",
    "status": "string",
    "scheduledAt": "string",
    "completedAt": "string?",
    "version": "number",
    "result": "any",
}
STATS = dict.fromkeys(["scheduled", "running", "completed", "failed", "cancelled"], "number")
RUN = {
    "runId": "string",
    "executionId": "string",
    "runIndex": "number",
    "payload": "any",
    "status": "string",
    "result": "any",
    "startedAt": "string",
    "completedAt": "string?",
    "trigger": "string",
}
ATTEMPT = {
    "attemptNumber": "number",
    "status": "string",
    "result": "any",
    "error": "string?",
    "startedAt": "string",
    "completedAt": "string?",
}
STEP = {
    "stepId": "string",
    "name": "string",
    "kind": "string",
    "status": "string",
    "retryAttempt": "number",
    "result": "any",
    "lastError": "string?",
    "retryable": "boolean",
    "scheduledAt": "string",
    "completedAt": "string?",
}
PAUSE_RULE = {
    "ruleId": "string",
    "executionId": "string?",
    "taskName": "string?",
    "stepPattern": "string?",
    "createdAt": "string",
    "expiresAt": "string?",
    "createdBy": "string?",
    "deletedAt": "string?",
}


def conforms(value: Any, shape: dict[str, str], where: str) -> None:
    """``value`` has every key of ``shape`` with the type the UI reads (extra keys are fine:
    the UI ignores them)."""
    assert isinstance(value, dict), f"{where}: {value!r} is not an object"
    for key, kind in shape.items():
        assert key in value, f"{where}: no {key!r} in {sorted(value)}"
        got = value[key]
        if kind.endswith("?") and got is None:
            continue
        expected = {"string": str, "number": int | float, "boolean": bool, "any": object}
        wanted = expected[kind.rstrip("?")]
        assert isinstance(got, wanted), f"{where}.{key}: {got!r} is not a {kind}"
        assert kind != "number" or not isinstance(got, bool), f"{where}.{key}: a boolean"


class UiClient:
    """Calls the API as the UI's client does: its headers on every call, ``res.json()`` on
    every answer but 204, the allowed origin echoed on every answer."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        content = None if body is None else json.dumps(body)
        response = await self.client.request(
            method, path, params=params or None, content=content, headers=UI_HEADERS
        )
        assert response.status_code < 400, response.text
        assert response.headers["access-control-allow-origin"] == ORIGIN
        self.last = response
        if response.status_code == 204:
            return None
        return response.json()  # the UI's res.json(): never an empty body


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://zart")


@pytest.fixture(autouse=True)
def _fresh_handlers() -> None:
    flaky_tries.clear()
    declining.clear()


@pytest.fixture
async def ui(scheduler: DurableScheduler) -> AsyncIterator[UiClient]:
    app = create_app(ApiSettings(cors_origins=(ORIGIN,), api_token=""), scheduler=scheduler)
    async with _client(app) as client:
        yield UiClient(client)


async def _until(ui: UiClient, execution_id: str, statuses: set[str]) -> dict[str, Any]:
    for _ in range(2000):
        execution: dict[str, Any] = await ui.call("GET", f"/api/v1/executions/{execution_id}")
        if execution["status"] in statuses:
            return execution
        await asyncio.sleep(0.01)
    raise AssertionError(f"{execution_id} never reached {statuses}: {execution}")


def _ordered(step: dict[str, Any]) -> None:
    """A step's times as they happened: scheduled, then each attempt, then completed."""
    times = [step["scheduledAt"]]
    for attempt in step["attempts"]:
        times += [attempt["startedAt"], attempt["completedAt"]]
    times.append(step["completedAt"])
    parsed = [datetime.fromisoformat(t) for t in times if t is not None]
    assert parsed == sorted(parsed), f"{step['name']}: times out of order {times}"


async def test_every_ui_route_answers_the_shapes_the_ui_reads(
    ui: UiClient, scheduler: DurableScheduler
) -> None:
    declining.add("ui-failed")
    async with scheduler.run_worker(**FAST_WORKER):
        for execution_id, task in [
            ("ui-done", "ui-order"),
            ("ui-failed", "ui-order"),
            ("ui-waiting", "ui-approval"),
            ("ui-event", "ui-approval"),
        ]:
            started = await ui.call(
                "POST",
                "/api/v1/executions",
                {"executionId": execution_id, "taskName": task, "payload": {"amount": 3}},
            )
            conforms(started, EXECUTION, "start")
        await _until(ui, "ui-done", {"completed"})
        await _until(ui, "ui-failed", {"failed"})
        await _until(ui, "ui-waiting", {"waiting"})
        await _until(ui, "ui-event", {"waiting"})

        # The dashboard: stats and the ten newest; a waiting execution counts as running.
        stats = await ui.call("GET", "/api/v1/stats")
        conforms(stats, STATS, "stats")
        assert (stats["running"], stats["completed"], stats["failed"]) == (2, 1, 1)
        newest = await ui.call("GET", "/api/v1/executions", limit=10, sortOrder="desc")
        assert isinstance(newest, list)
        assert len(newest) == 4
        for execution in newest:
            conforms(execution, EXECUTION, "dashboard")
        assert ui.last.headers["x-total-count"] == "4"

        # The list: its default query, each column's sort, the filters.
        page = await ui.call(
            "GET", "/api/v1/executions", limit=25, offset=0, sortBy="scheduled_at", sortOrder="desc"
        )
        assert [e["durableExecutionId"] for e in page] == [e["durableExecutionId"] for e in newest]
        by_task = await ui.call(
            "GET", "/api/v1/executions", sortBy="task_name", sortOrder="asc", limit=25
        )
        assert [e["name"] for e in by_task] == sorted(e["name"] for e in by_task)
        by_status = await ui.call("GET", "/api/v1/executions", sortBy="status", sortOrder="asc")
        assert [e["status"] for e in by_status] == sorted(e["status"] for e in by_status)
        done_first = await ui.call("GET", "/api/v1/executions", sortBy="completed_at")
        assert len(done_first) == 4
        for odd in ("whatever", "scheduledAt", "taskName"):
            assert len(await ui.call("GET", "/api/v1/executions", sortBy=odd)) == 4
        failed = await ui.call(
            "GET",
            "/api/v1/executions",
            status="failed",
            taskName="ui-order",
            search="ui-fail",
            limit=25,
            offset=0,
        )
        assert [e["durableExecutionId"] for e in failed] == ["ui-failed"]
        assert ui.last.headers["x-total-count"] == "1"
        assert await ui.call("GET", "/api/v1/executions", offset=25, limit=25) == []
        assert ui.last.headers["x-total-count"] == "4"

        # The detail page of a finished run: string step ids and errors, times in order.
        detail = await ui.call("GET", "/zart/admin/v1/executions/ui-done/detail")
        conforms(detail["execution"], EXECUTION, "detail.execution")
        for run in detail["runs"]:
            conforms(run, RUN, "detail.run")
        flaky_step, charge_step = detail["steps"]
        for step in detail["steps"]:
            conforms(step, STEP, "detail.step")
            for attempt in step["attempts"]:
                conforms(attempt, ATTEMPT, "detail.attempt")
            _ordered(step)
        assert [a["error"] for a in flaky_step["attempts"]] == [
            "ConnectionError: psp unreachable",
            None,
        ]
        assert flaky_step["lastError"] is None or isinstance(flaky_step["lastError"], str)
        assert int(charge_step["stepId"]) != int(flaky_step["stepId"])

        # The failed run: its step is retryable and its error is a string.
        failed_detail = await ui.call("GET", "/zart/admin/v1/executions/ui-failed/detail")
        failed_step = next(s for s in failed_detail["steps"] if s["name"] == "ui-charge")
        assert failed_step["lastError"] == "ValueError: card declined"
        assert failed_step["retryable"] is True
        run_id = failed_detail["runs"][0]["runId"]
        again = await ui.call("GET", "/zart/admin/v1/executions/ui-failed/detail", runId=run_id)
        assert again["runs"] == failed_detail["runs"]

        # The admin actions.
        declining.discard("ui-failed")
        retried = await ui.call(
            "POST",
            "/zart/admin/v1/executions/ui-failed/retry-step",
            {"stepName": "ui-charge", "triggeredBy": "ui"},
        )
        assert isinstance(retried["newTaskId"], str)
        assert (await _until(ui, "ui-failed", {"completed"}))["result"] == 3
        restarted = await ui.call(
            "POST", "/zart/admin/v1/executions/ui-done/restart", {"triggeredBy": "ui"}
        )
        assert isinstance(restarted["newRunId"], str)
        await _until(ui, "ui-done", {"completed"})
        rerun = await ui.call(
            "POST",
            "/zart/admin/v1/executions/ui-failed/rerun",
            {"rerunSteps": ["ui-charge"], "preserveSteps": ["ui-flaky"], "triggeredBy": "ui"},
        )
        assert rerun == {"newRunNumber": 2, "effectiveRerun": ["ui-charge"]}
        await _until(ui, "ui-failed", {"completed"})

        # An event: 202 with a JSON body; cancel: 204.
        accepted = await ui.call("POST", "/api/v1/events/ui-event/approval", {"answer": "yes"})
        assert ui.last.status_code == 202
        assert accepted["accepted"] is True
        assert (await _until(ui, "ui-event", {"completed"}))["result"] == "yes"
        assert await ui.call("POST", "/api/v1/executions/ui-waiting/cancel") is None
        assert ui.last.status_code == 204

    # Pause rules: created by someone, listed, removed.
    rule = await ui.call(
        "POST",
        "/zart/admin/v1/pause",
        {"taskName": "ui-order", "stepPattern": "ui-*", "triggeredBy": "alice"},
    )
    conforms(rule, PAUSE_RULE, "pause rule")
    assert rule["createdBy"] == "alice"
    listed = await ui.call("GET", "/zart/admin/v1/pause")
    assert [r["ruleId"] for r in listed] == [rule["ruleId"]]
    conforms(listed[0], PAUSE_RULE, "pause list")
    assert await ui.call("DELETE", f"/zart/admin/v1/pause/{rule['ruleId']}") is None
    assert await ui.call("GET", "/zart/admin/v1/pause") == []

    final = await ui.call("GET", "/api/v1/executions", limit=25)
    assert {e["status"] for e in final} <= UI_STATUSES


async def test_a_browser_preflight_is_answered_for_the_allowed_origin_only(
    ui: UiClient, scheduler: DurableScheduler
) -> None:
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,authorization",
    }
    answer = await ui.client.options("/zart/admin/v1/pause", headers=preflight)
    assert answer.status_code in (200, 204)
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in answer.headers["access-control-allow-methods"]
    assert "content-type" in answer.headers["access-control-allow-headers"].lower()

    listed = await ui.client.get("/api/v1/executions", headers=UI_HEADERS)
    assert "x-total-count" in listed.headers["access-control-expose-headers"].lower()

    stranger = await ui.client.options(
        "/zart/admin/v1/pause", headers={**preflight, "Origin": "http://evil.example"}
    )
    assert "access-control-allow-origin" not in stranger.headers

    closed = create_app(ApiSettings(api_token=""), scheduler=scheduler)  # no origins by default
    async with _client(closed) as client:
        answer = await client.options("/zart/admin/v1/pause", headers=preflight)
        assert "access-control-allow-origin" not in answer.headers


async def test_cors_origins_come_from_the_environment_with_the_token_in_front(
    scheduler: DurableScheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZART_CORS_ORIGINS", f"{ORIGIN}, http://other.example")
    monkeypatch.setenv("ZART_API_TOKEN", "tok")
    app = create_app(ApiSettings(), scheduler=scheduler)
    async with _client(app) as client:
        preflight = await client.options(
            "/api/v1/stats",
            headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"},
        )
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        refused = await client.get("/api/v1/stats", headers=UI_HEADERS)
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == ORIGIN  # readable by the page
        allowed = await client.get(
            "/api/v1/stats", headers={**UI_HEADERS, "Authorization": "Bearer tok"}
        )
        assert allowed.status_code == 200
