"""The routes the dashboard added to the HTTP API, through a real ASGI client on both
backends with a worker running: workers, the task catalogue with input schemas, activity
buckets and per-task figures, what waiting runs wait for, skip-sleep, schedules and their
firings, the events of an execution's detail; and bad input at each, refused with the
error envelope and nothing changed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.acceptance import dashboard_flow  # noqa: F401  (registers the handlers)
from tests.integration.runtime_helpers import FAST_WORKER, wait_for_status
from zart import DurableScheduler, ExecutionStatus
from zart.api import ApiSettings, create_app

ADMIN = "/zart/admin/v1"


@pytest.fixture
async def client(scheduler: DurableScheduler) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ApiSettings(api_token=""), scheduler=scheduler)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://zart") as opened:
        yield opened


def _ok(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json() if answer.content else None


def _refused(answer: httpx.Response, status: int, code: str | None = None) -> str:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    if code:
        assert error["code"] == code, error
    message: str = error["message"]
    return message


async def test_workers_tasks_activity_and_waits(
    client: httpx.AsyncClient, scheduler: DurableScheduler
) -> None:
    async with scheduler.run_worker(**FAST_WORKER):
        done = await scheduler.start("dash-order", {"customer": "ada", "amount": 2})
        failed = await scheduler.start("dash-order", {"customer": "bob", "amount": -2})
        nap = await scheduler.start("dash-nap", {})
        asks = await scheduler.start("dash-approval", {"who": "eve"})
        await wait_for_status(scheduler, done, ExecutionStatus.COMPLETED)
        await wait_for_status(scheduler, failed, ExecutionStatus.FAILED)
        await wait_for_status(scheduler, nap, ExecutionStatus.WAITING)
        await wait_for_status(scheduler, asks, ExecutionStatus.WAITING)

        (worker,) = _ok(await client.get(f"{ADMIN}/workers"))
        assert worker["alive"] is True
        assert "dash-order" in worker["taskNames"]

        tasks = {t["name"]: t for t in _ok(await client.get(f"{ADMIN}/tasks"))}
        order = tasks["dash-order"]
        assert order["registeredHere"] is True
        assert order["inputSchema"]["required"] == ["customer", "amount"]
        assert set(order["inputSchema"]["properties"]) == {"customer", "amount", "express"}

        for window in (3600, 86400):
            activity = _ok(await client.get(f"{ADMIN}/activity", params={"windowSecs": window}))
            assert len(activity["buckets"]) == 24
            assert sum(b["started"] for b in activity["buckets"]) == 4
            assert sum(b["completed"] for b in activity["buckets"]) == 1
            assert sum(b["failed"] for b in activity["buckets"]) == 1
            (figures,) = [t for t in activity["tasks"] if t["taskName"] == "dash-order"]
            assert (figures["finished"], figures["failed"]) == (2, 1)
            assert figures["meanSeconds"] >= 0
        for bad in ("10", "nope", str(40 * 86400)):
            _refused(await client.get(f"{ADMIN}/activity", params={"windowSecs": bad}), 422)

        runs = {e: (await scheduler.status(e)).run_id for e in (nap, asks, done)}
        waits = _ok(await client.get(f"{ADMIN}/waits", params={"runId": list(runs.values())}))
        assert set(waits) == {nap, asks}  # the completed one waits for nothing
        assert [(w["kind"], w["name"]) for w in waits[nap]] == [("sleep", "nap")]
        assert waits[nap][0]["wakeAt"] is not None
        assert [(w["kind"], w["name"]) for w in waits[asks]] == [("event", "approval")]
        _refused(await client.get(f"{ADMIN}/waits"), 422)
        too_many = [("runId", f"r{i}") for i in range(201)]
        _refused(await client.get(f"{ADMIN}/waits", params=too_many), 422)

        # Skip the sleep: refused for a step that is not a waiting sleep, then done.
        skip = f"{ADMIN}/executions/{nap}/skip-sleep"
        _refused(await client.post(skip, json={"stepName": "other"}), 404)
        _refused(await client.post(skip, json={}), 422)
        _refused(
            await client.post(f"{ADMIN}/executions/{done}/skip-sleep", json={"stepName": "nap"}),
            409,
        )
        _refused(
            await client.post(f"{ADMIN}/executions/nope/skip-sleep", json={"stepName": "nap"}), 404
        )
        assert (await scheduler.status(nap)).status is ExecutionStatus.WAITING
        _ok(await client.post(skip, json={"stepName": "nap", "triggeredBy": "test"}), 204)
        assert (await wait_for_status(scheduler, nap, ExecutionStatus.COMPLETED)).result == "rested"

        # The detail shows an event with its payload once it arrives.
        _ok(await client.post(f"/api/v1/events/{asks}/approval", json={"answer": "yes"}), 202)
        await wait_for_status(scheduler, asks, ExecutionStatus.COMPLETED)
        detail = _ok(await client.get(f"{ADMIN}/executions/{asks}/detail"))
        (event,) = detail["events"]
        assert (event["name"], event["payload"]) == ("approval", {"answer": "yes"})
        assert event["receivedAt"] is not None


async def test_schedules_over_http(client: httpx.AsyncClient) -> None:
    path = f"{ADMIN}/schedules"
    body = {"name": "nightly", "taskName": "dash-nap", "cron": "0 3 * * *", "payload": {}}
    added = _ok(await client.post(path, json=body), 201)
    assert (added["name"], added["paused"]) == ("nightly", False)
    assert added["nextFireAt"] is not None
    assert "cron" in _refused(await client.post(path, json={**body, "cron": "not cron"}), 422)
    bad_zone = {**body, "name": "other", "timezone": "Mars/Base"}
    _refused(await client.post(path, json=bad_zone), 422, "invalid_schedule")
    unknown = {**body, "name": "other", "taskName": "no-such-task"}
    _refused(await client.post(path, json=unknown), 404)
    assert [s["name"] for s in _ok(await client.get(path))] == ["nightly"]

    assert _ok(await client.post(f"{path}/nightly/pause"))["paused"] is True
    assert _ok(await client.post(f"{path}/nightly/resume"))["paused"] is False
    assert _ok(await client.get(f"{path}/nightly/firings")) == []
    _refused(await client.get(f"{path}/nightly/firings", params={"limit": 0}), 422)
    for missing in ("pause", "resume", "firings"):
        method = client.get if missing == "firings" else client.post
        _refused(await method(f"{path}/nope/{missing}"), 404, "schedule_not_found")
    _ok(await client.delete(f"{path}/nightly"), 204)
    _refused(await client.delete(f"{path}/nightly"), 404, "schedule_not_found")
    assert _ok(await client.get(path)) == []
