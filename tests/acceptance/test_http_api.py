"""The HTTP API through a real ASGI client against a real database (both backends): every
route and status code of DESIGN section 4, the error envelope, auth, and the admin operations
end to end with an in-process worker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

import zart
from tests.integration.runtime_helpers import FAST_WORKER, count, times
from zart import DurableScheduler
from zart.api import ApiSettings, create_app, create_router

TOKEN = "s3cret-token"

#: execution ids whose "http-charge" step fails
declining: set[str] = set()


class Order(BaseModel):
    email: str
    amount: int


@zart.step("http-lookup")
async def lookup(email: str) -> str:
    count("lookup")
    return f"user:{email}"


@zart.step("http-charge")
async def charge(user: str, amount: int) -> str:
    count("charge")
    if zart.context().execution_id in declining:
        raise ValueError("card declined")
    return f"charged {user} {amount}"


@zart.durable("http-order")
async def order_flow(data: Order) -> dict[str, Any]:
    user = await lookup(data.email)
    charged = await charge(user, data.amount)
    return {"user": user, "charged": charged, "notified": count("notify")}


@zart.durable("http-approval")
async def approval(data: Order) -> str:
    decision = await zart.wait_for_event("approval")
    return f"{data.email}: {decision['answer']}"


class Answer(BaseModel):
    answer: str
    by: str


@zart.durable("http-typed-approval")
async def typed_approval(data: Order) -> str:
    decision = await zart.wait_for_event("approval", model=Answer)
    return f"{data.email}: {decision.answer} by {decision.by}"


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://zart")


@pytest.fixture
async def client(scheduler: DurableScheduler) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ApiSettings(max_body_bytes=4096), scheduler=scheduler)
    async with _client(app) as client:
        yield client


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    message: str = body["error"]["message"]
    assert message
    return message


ORDER = {"email": "a@b.c", "amount": 5}


async def test_start_get_wait_list_and_stats(
    client: httpx.AsyncClient, scheduler: DurableScheduler
) -> None:
    async with scheduler.run_worker(**FAST_WORKER):
        created = await client.post(
            "/api/v1/executions",
            json={"executionId": "order-1", "taskName": "http-order", "payload": ORDER},
        )
        assert created.status_code == 201, created.text
        assert created.json()["durableExecutionId"] == "order-1"
        assert created.json()["name"] == "http-order"
        assert created.json()["payload"] == ORDER

        waited = await client.get("/api/v1/executions/order-1/wait", params={"timeoutSecs": 10})

    assert waited.status_code == 200
    execution = waited.json()
    pinned = {"name", "durableExecutionId", "payload", "status", "scheduledAt", "completedAt"}
    pinned |= {"version", "result"}
    added = {"error", "runId", "runCount", "updatedAt", "crashedClaims"}
    added |= {"compensationId", "compensates", "tags", "parentExecutionId"}
    assert set(execution) == pinned | added
    assert execution["status"] == "completed"
    assert execution["result"]["charged"] == "charged user:a@b.c 5"
    assert execution["completedAt"] is not None

    again = await client.post(
        "/api/v1/executions",
        json={"executionId": "order-1", "taskName": "http-order", "payload": ORDER},
    )
    assert again.status_code == 200
    assert again.json()["status"] == "completed"

    fetched = await client.get("/api/v1/executions/order-1")
    assert fetched.status_code == 200
    assert fetched.json() == execution

    listed = await client.get(
        "/api/v1/executions",
        params={"status": "completed", "taskName": "http-order", "search": "order", "limit": 5},
    )
    assert listed.status_code == 200
    assert listed.headers["x-total-count"] == "1"
    assert [e["durableExecutionId"] for e in listed.json()] == ["order-1"]
    failed = await client.get("/api/v1/executions", params={"status": "failed"})
    assert (failed.json(), failed.headers["x-total-count"]) == ([], "0")
    sorted_ = await client.get(
        "/api/v1/executions",
        params={"sortBy": "taskName", "sortOrder": "asc", "from": "2000-01-01T00:00:00Z"},
    )
    assert sorted_.headers["x-total-count"] == "1"

    stats = await client.get("/api/v1/stats")
    assert stats.json() == {
        "scheduled": 0,
        "running": 0,
        "waiting": 0,
        "completed": 1,
        "failed": 0,
        "cancelled": 0,
    }


async def test_start_errors_store_nothing(client: httpx.AsyncClient) -> None:
    await client.post(
        "/api/v1/executions",
        json={"executionId": "order-2", "taskName": "http-order", "payload": ORDER},
    )
    message = _error(
        await client.post(
            "/api/v1/executions",
            json={
                "executionId": "order-2",
                "taskName": "http-order",
                "payload": {**ORDER, "amount": 6},
            },
        ),
        409,
        "execution_already_exists",
    )
    assert "different payload" in message
    _error(
        await client.post("/api/v1/executions", json={"taskName": "no-such-task", "payload": {}}),
        404,
        "unknown_task",
    )
    _error(
        await client.post(
            "/api/v1/executions", json={"taskName": "http-order", "payload": {"email": 1}}
        ),
        422,
        "invalid_payload",
    )
    _error(await client.post("/api/v1/executions", json={"payload": {}}), 422, "validation_error")
    malformed = await client.post(
        "/api/v1/executions", content=b'{"taskName": ', headers={"content-type": "application/json"}
    )
    _error(malformed, 422, "validation_error")
    _error(
        await client.post(
            "/api/v1/executions",
            json={"taskName": "http-order", "payload": {"email": "x" * 5000, "amount": 1}},
        ),
        413,
        "payload_too_large",
    )
    listed = (await client.get("/api/v1/executions")).json()
    assert [e["durableExecutionId"] for e in listed] == ["order-2"]


async def test_a_streamed_body_over_the_limit_is_refused(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    response = await client.post(
        "/api/v1/executions", content=chunks(), headers={"content-type": "application/json"}
    )
    _error(response, 413, "payload_too_large")


async def test_unknown_executions_routes_and_bad_queries(client: httpx.AsyncClient) -> None:
    _error(await client.get("/api/v1/executions/nope"), 404, "execution_not_found")
    _error(await client.post("/api/v1/executions/nope/cancel"), 404, "execution_not_found")
    _error(await client.get("/api/v1/executions/nope/wait"), 404, "execution_not_found")
    _error(await client.post("/api/v1/events/nope/go", json={}), 404, "execution_not_found")
    _error(await client.get("/api/v1/no-such-route"), 404, "not_found")
    _error(await client.delete("/api/v1/stats"), 405, "method_not_allowed")
    _error(
        await client.get("/api/v1/executions", params={"status": "odd"}), 422, "validation_error"
    )
    _error(await client.get("/api/v1/executions", params={"limit": 0}), 422, "validation_error")
    _error(
        await client.get("/api/v1/executions", params={"from": "2024-01-01T00:00:00"}),
        422,
        "validation_error",
    )


async def test_cancel_wait_timeout_and_events(
    client: httpx.AsyncClient, scheduler: DurableScheduler
) -> None:
    async with scheduler.run_worker(**FAST_WORKER):
        await client.post(
            "/api/v1/executions",
            json={"executionId": "ap-1", "taskName": "http-approval", "payload": ORDER},
        )
        await client.post(
            "/api/v1/executions",
            json={"executionId": "ap-2", "taskName": "http-approval", "payload": ORDER},
        )
        timed_out = await client.get("/api/v1/executions/ap-1/wait", params={"timeoutSecs": 0.05})
        _error(timed_out, 504, "wait_timed_out")

        offered = await client.post("/api/v1/events/ap-1/approval", json={"answer": "yes"})
        assert offered.status_code == 202
        assert offered.json() == {
            "durableExecutionId": "ap-1",
            "event": "approval",
            "payload": {"answer": "yes"},
            "accepted": True,
        }
        done = await client.get("/api/v1/executions/ap-1/wait", params={"timeoutSecs": 10})
        assert done.json()["result"] == "a@b.c: yes"
        _error(
            await client.post("/api/v1/events/ap-1/approval", json={"answer": "again"}),
            409,
            "event_not_accepted",
        )

        cancelled = await client.post("/api/v1/executions/ap-2/cancel")
        assert cancelled.status_code == 204
        assert cancelled.content == b""
        _error(await client.post("/api/v1/executions/ap-2/cancel"), 409, "execution_terminal")
        assert (await client.get("/api/v1/executions/ap-2")).json()["status"] == "cancelled"


async def test_an_event_that_does_not_fit_the_waits_model_is_422_and_stores_nothing(
    client: httpx.AsyncClient, scheduler: DurableScheduler
) -> None:
    async with scheduler.run_worker(**FAST_WORKER):
        body = {"executionId": "typed-1", "taskName": "http-typed-approval", "payload": ORDER}
        assert (await client.post("/api/v1/executions", json=body)).status_code == 201
        for _ in range(1000):  # hang guard: until the wait (and its model's schema) is stored
            if (await scheduler.status("typed-1")).status is zart.ExecutionStatus.WAITING:
                break
            await asyncio.sleep(0.01)

        refused = await client.post("/api/v1/events/typed-1/approval", json={"answer": 3})
        message = _error(refused, 422, "event_does_not_fit")
        assert "'approval'" in message
        assert 'answer: 3 is not of type "string"' in message
        assert '"by" is a required property' in message
        # Stored nothing: the execution still waits and the right event is accepted.
        assert (await scheduler.status("typed-1")).status is zart.ExecutionStatus.WAITING
        offered = await client.post(
            "/api/v1/events/typed-1/approval", json={"answer": "yes", "by": "grace"}
        )
        assert offered.status_code == 202, offered.text
        done = await client.get("/api/v1/executions/typed-1/wait", params={"timeoutSecs": 10})
        assert done.json()["result"] == "a@b.c: yes by grace"


async def test_a_run_failed_on_an_event_is_repaired_over_http(
    client: httpx.AsyncClient, scheduler: DurableScheduler
) -> None:
    admin = "/zart/admin/v1/executions/typed-2"
    body = {"executionId": "typed-2", "taskName": "http-typed-approval", "payload": ORDER}
    assert (await client.post("/api/v1/executions", json=body)).status_code == 201
    # Offered before the wait is recorded, so nothing checks it at the door: the handler fails.
    early = await client.post("/api/v1/events/typed-2/approval", json={"answer": 3})
    assert early.status_code == 202, early.text
    async with scheduler.run_worker(**FAST_WORKER):
        done = await client.get("/api/v1/executions/typed-2/wait", params={"timeoutSecs": 10})
        assert done.json()["status"] == "failed"
        wait = next(s for s in (await client.get(f"{admin}/detail")).json()["steps"])
        assert (wait["name"], wait["kind"], wait["status"]) == ("approval", "event", "failed")
        assert wait["retryable"] is True
        assert wait["lastErrorDetail"]["kind"] == "invalid_event"

        retried = await client.post(f"{admin}/retry-step", json={"stepName": "approval"})
        assert retried.status_code == 200, retried.text
        for _ in range(1000):  # hang guard: until the re-opened wait is suspended again
            if (await scheduler.status("typed-2")).status is zart.ExecutionStatus.WAITING:
                break
            await asyncio.sleep(0.01)
        _error(
            await client.post("/api/v1/events/typed-2/approval", json={"answer": 4}),
            422,
            "event_does_not_fit",
        )
        fixed = await client.post(
            "/api/v1/events/typed-2/approval", json={"answer": "yes", "by": "ops"}
        )
        assert fixed.status_code == 202, fixed.text
        done = await client.get("/api/v1/executions/typed-2/wait", params={"timeoutSecs": 10})
        assert done.json()["result"] == "a@b.c: yes by ops"


async def test_auth_is_required_when_a_token_is_set(scheduler: DurableScheduler) -> None:
    app = create_app(ApiSettings(api_token=TOKEN), scheduler=scheduler)
    async with _client(app) as client:
        _error(await client.get("/api/v1/stats"), 401, "unauthorized")
        wrong = await client.get("/api/v1/stats", headers={"Authorization": "Bearer nope"})
        _error(wrong, 401, "unauthorized")
        assert wrong.headers["www-authenticate"] == "Bearer"
        _error(
            await client.get("/zart/admin/v1/pause", headers={"Authorization": TOKEN}),
            401,
            "unauthorized",
        )
        good = await client.get("/api/v1/stats", headers={"Authorization": f"Bearer {TOKEN}"})
        assert good.status_code == 200
        assert (await client.get("/healthz")).text == "ok"
        assert (await client.get("/readyz")).status_code == 200


async def test_the_router_mounts_under_a_prefix_with_its_envelope(
    scheduler: DurableScheduler,
) -> None:
    from fastapi import FastAPI

    app = FastAPI()
    app.include_router(create_router(scheduler, api_token=""), prefix="/ops")
    async with _client(app) as client:
        assert (await client.get("/ops/api/v1/stats")).status_code == 200
        _error(await client.get("/ops/api/v1/executions/nope"), 404, "execution_not_found")
        _error(await client.get("/ops/api/v1/executions?limit=x"), 422, "validation_error")


async def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    settings = ApiSettings(database_url="postgresql+asyncpg://postgres@127.0.0.1:1/none")
    app = create_app(settings)
    async with _client(app) as client:
        assert (await client.get("/healthz")).status_code == 200
        _error(await client.get("/readyz"), 503, "database_unavailable")
        _error(await client.get("/api/v1/stats"), 503, "database_unavailable")


async def test_openapi_document_lists_every_route(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    paths = document["paths"]
    assert {
        "/api/v1/executions",
        "/api/v1/executions/{execution_id}",
        "/api/v1/executions/{execution_id}/cancel",
        "/api/v1/executions/{execution_id}/wait",
        "/api/v1/executions/{execution_id}/streams/{key}",
        "/api/v1/events/{execution_id}/{event_name}",
        "/api/v1/stats",
        "/healthz",
        "/readyz",
        "/zart/admin/v1/executions/{execution_id}/detail",
        "/zart/admin/v1/executions/{execution_id}/retry-step",
        "/zart/admin/v1/executions/{execution_id}/restart",
        "/zart/admin/v1/executions/{execution_id}/rerun",
        "/zart/admin/v1/executions/{execution_id}/resume-diverged",
        "/zart/admin/v1/executions/{execution_id}/fail-diverged",
        "/zart/admin/v1/pause",
        "/zart/admin/v1/pause/{rule_id}",
    } <= set(paths)
    envelope = paths["/api/v1/executions"]["post"]["responses"]["422"]
    assert envelope["content"]["application/json"]["schema"]["$ref"].endswith("ErrorEnvelope")


# -- admin ---------------------------------------------------------------------------------


async def _failed(client: httpx.AsyncClient, execution_id: str) -> None:
    declining.add(execution_id)
    await client.post(
        "/api/v1/executions",
        json={"executionId": execution_id, "taskName": "http-order", "payload": ORDER},
    )
    done = await client.get(f"/api/v1/executions/{execution_id}/wait", params={"timeoutSecs": 10})
    assert done.json()["status"] == "failed"


async def test_a_failed_step_retried_over_http_succeeds(
    client: httpx.AsyncClient, scheduler: DurableScheduler
) -> None:
    execution_id = f"retry-{uuid.uuid4().hex[:8]}"
    admin = f"/zart/admin/v1/executions/{execution_id}"
    async with scheduler.run_worker(**FAST_WORKER):
        await _failed(client, execution_id)
        detail = (await client.get(f"{admin}/detail")).json()
        charge_step = next(s for s in detail["steps"] if s["name"] == "http-charge")
        assert charge_step["status"] == "failed"
        assert charge_step["retryable"] is True
        assert charge_step["lastError"] == "ValueError: card declined"
        assert charge_step["lastErrorDetail"]["message"] == "card declined"
        _error(
            await client.post(f"{admin}/retry-step", json={"stepName": "http-lookup"}),
            409,
            "invalid_execution_state",
        )
        _error(
            await client.post(f"{admin}/retry-step", json={"stepName": "nope"}),
            404,
            "step_not_found",
        )

        declining.discard(execution_id)
        retried = await client.post(
            f"{admin}/retry-step", json={"stepName": "http-charge", "triggeredBy": "ops"}
        )
        assert retried.status_code == 200, retried.text
        assert retried.json()["newTaskId"].endswith(":http-charge:1")
        done = await client.get(
            f"/api/v1/executions/{execution_id}/wait", params={"timeoutSecs": 10}
        )

    assert done.json()["status"] == "completed"
    detail = (await client.get(f"{admin}/detail")).json()
    assert set(detail) == {
        "execution",
        "runs",
        "runId",
        "steps",
        "events",
        "divergence",
        "patches",
        "children",
    }
    assert len(detail["runs"]) == 1
    charge_step = next(s for s in detail["steps"] if s["name"] == "http-charge")
    assert charge_step["status"] == "completed"
    assert charge_step["retryAttempt"] == 1
    assert [a["status"] for a in charge_step["attempts"]] == ["failed", "succeeded"]
    assert set(charge_step["attempts"][0]) == {
        "attemptNumber",
        "status",
        "result",
        "error",
        "errorDetail",
        "startedAt",
        "completedAt",
    }
    assert charge_step["attempts"][0]["error"] == "ValueError: card declined"
    # A first try that succeeded has no attempt row: its step's row gives it back, as attempt 0.
    lookup_step = next(s for s in detail["steps"] if s["name"] == "http-lookup")
    assert [(a["attemptNumber"], a["status"]) for a in lookup_step["attempts"]] == [
        (0, "succeeded")
    ]
    assert lookup_step["attempts"][0]["startedAt"] == lookup_step["scheduledAt"]
    assert lookup_step["attempts"][0]["completedAt"] == lookup_step["completedAt"]
    assert times(execution_id, "lookup") == 1


async def test_a_rerun_over_http_keeps_the_preserved_results(
    client: httpx.AsyncClient, scheduler: DurableScheduler
) -> None:
    execution_id = f"rerun-{uuid.uuid4().hex[:8]}"
    admin = f"/zart/admin/v1/executions/{execution_id}"
    async with scheduler.run_worker(**FAST_WORKER):
        await client.post(
            "/api/v1/executions",
            json={"executionId": execution_id, "taskName": "http-order", "payload": ORDER},
        )
        first = await client.get(
            f"/api/v1/executions/{execution_id}/wait", params={"timeoutSecs": 10}
        )
        _error(
            await client.post(f"{admin}/rerun", json={"preserveSteps": ["nope"]}),
            422,
            "invalid_payload",
        )
        rerun = await client.post(
            f"{admin}/rerun",
            json={"rerunSteps": ["http-charge"], "preserveSteps": ["http-lookup"]},
        )
        assert rerun.status_code == 200, rerun.text
        assert rerun.json() == {"newRunNumber": 2, "effectiveRerun": ["http-charge"]}
        second = await client.get(
            f"/api/v1/executions/{execution_id}/wait", params={"timeoutSecs": 10}
        )

    assert first.json()["result"]["notified"] == 1
    assert second.json()["result"]["notified"] == 2
    assert times(execution_id, "lookup") == 1  # preserved: its stored result was replayed
    assert times(execution_id, "charge") == 2
    runs = (await client.get(f"{admin}/runs")).json()
    assert [(r["runIndex"], r["trigger"], r["status"]) for r in runs] == [
        (1, "initial", "completed"),
        (2, "selective_rerun", "completed"),
    ]
    old = (await client.get(f"{admin}/detail", params={"runId": runs[0]["runId"]})).json()
    assert [s["name"] for s in old["steps"]] == ["http-lookup", "http-charge"]
    _error(await client.get(f"{admin}/detail", params={"runId": "nope"}), 404, "run_not_found")


async def test_restart_over_http(client: httpx.AsyncClient, scheduler: DurableScheduler) -> None:
    execution_id = f"restart-{uuid.uuid4().hex[:8]}"
    admin = f"/zart/admin/v1/executions/{execution_id}"
    async with scheduler.run_worker(**FAST_WORKER):
        await _failed(client, execution_id)
        declining.discard(execution_id)
        _error(
            await client.post(f"{admin}/restart", json={"payload": {"email": 3}}),
            422,
            "invalid_payload",
        )
        restarted = await client.post(
            f"{admin}/restart", json={"payload": {"email": "n@b.c", "amount": 7}}
        )
        assert restarted.status_code == 200, restarted.text
        done = await client.get(
            f"/api/v1/executions/{execution_id}/wait", params={"timeoutSecs": 10}
        )

    assert done.json()["result"]["charged"] == "charged user:n@b.c 7"
    runs = (await client.get(f"{admin}/runs")).json()
    assert runs[-1]["runId"] == restarted.json()["newRunId"]
    assert [r["trigger"] for r in runs] == ["initial", "restart"]
    _error(await client.post("/zart/admin/v1/executions/nope/restart"), 404, "execution_not_found")


async def test_pause_rules_over_http_hold_a_step_until_removed(
    client: httpx.AsyncClient, scheduler: DurableScheduler
) -> None:
    _error(await client.post("/zart/admin/v1/pause", json={}), 422, "invalid_payload")
    created = await client.post(
        "/zart/admin/v1/pause",
        json={"taskName": "http-order", "stepPattern": "http-ch*", "reason": "psp down"},
    )
    assert created.status_code == 201, created.text
    rule = created.json()
    assert rule["deletedAt"] is None
    assert [r["ruleId"] for r in (await client.get("/zart/admin/v1/pause")).json()] == [
        rule["ruleId"]
    ]
    execution_id = f"paused-{uuid.uuid4().hex[:8]}"
    async with scheduler.run_worker(**FAST_WORKER):
        await client.post(
            "/api/v1/executions",
            json={"executionId": execution_id, "taskName": "http-order", "payload": ORDER},
        )
        for _ in range(1000):
            status = (await client.get(f"/api/v1/executions/{execution_id}")).json()["status"]
            if status == "waiting":
                break
            await asyncio.sleep(0.01)
        assert status == "waiting"
        assert times(execution_id, "charge") == 0

        removed = await client.delete(
            f"/zart/admin/v1/pause/{rule['ruleId']}", params={"triggeredBy": "ops"}
        )
        assert removed.status_code == 204
        done = await client.get(
            f"/api/v1/executions/{execution_id}/wait", params={"timeoutSecs": 10}
        )

    assert done.json()["status"] == "completed"
    assert times(execution_id, "charge") == 1
    assert (await client.get("/zart/admin/v1/pause")).json() == []
    audit = (await client.get("/zart/admin/v1/pause", params={"includeDeleted": "true"})).json()
    assert audit[0]["deletedBy"] == "ops"
    _error(
        await client.delete(f"/zart/admin/v1/pause/{rule['ruleId']}"), 404, "pause_rule_not_found"
    )
    other = (await client.post("/zart/admin/v1/pause", json={"executionId": "x"})).json()
    assert (await client.post(f"/zart/admin/v1/pause/{other['ruleId']}")).status_code == 204
