"""Tags: ``start(..., tags=...)``, ``zart.context().tags``, ``list_executions(tags=...)``, over
Python, HTTP (``tag=key:value``) and the CLI (``--tag key=value``), on both backends; a bad tag
or filter is a clear error that stores nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import zart
from tests.integration.runtime_helpers import FAST_WORKER
from zart import DurableScheduler
from zart.api import ApiSettings, create_app

ROOT = Path(__file__).resolve().parents[2]

#: execution id -> the tags zart.context() showed inside it
seen_tags: dict[str, dict[str, str]] = {}


@zart.durable("tags-report")
async def report(data: dict[str, Any]) -> str:
    info = zart.context()
    seen_tags[info.execution_id] = dict(info.tags)
    return "done"


async def _start_three(scheduler: DurableScheduler) -> None:
    await scheduler.start(report, {}, execution_id="acme-1", tags={"tenant": "acme", "plan": "pro"})
    await scheduler.start(report, {}, execution_id="acme-2", tags={"tenant": "acme"})
    await scheduler.start(report, {}, execution_id="globex-1", tags={"tenant": "globex"})
    await scheduler.start(report, {}, execution_id="untagged")


def _ids(page: zart.ExecutionPage) -> list[str]:
    return sorted(record.execution_id for record in page.items)


async def test_tags_are_stored_read_in_the_run_and_filtered_on(scheduler: DurableScheduler) -> None:
    async with scheduler.run_worker(**FAST_WORKER):
        await _start_three(scheduler)
        for execution_id in ("acme-1", "untagged"):
            assert await scheduler.wait(execution_id, timeout=10) == "done"

    assert seen_tags["acme-1"] == {"plan": "pro", "tenant": "acme"}
    assert seen_tags["untagged"] == {}
    assert (await scheduler.status("acme-2")).tags == {"tenant": "acme"}
    acme = await scheduler.list_executions(tags={"tenant": "acme"})
    assert (_ids(acme), acme.total) == (["acme-1", "acme-2"], 2)
    both = await scheduler.list_executions(tags={"tenant": "acme", "plan": "pro"})
    assert _ids(both) == ["acme-1"]
    assert (await scheduler.list_executions(tags={"tenant": "initech"})).total == 0
    assert (await scheduler.list_executions(tags={})).total == 4
    # A start with the same id and payload but other tags is another start, refused.
    with pytest.raises(zart.ExecutionAlreadyExists, match="other tags"):
        await scheduler.start(report, {}, execution_id="acme-2", tags={"tenant": "globex"})
    assert await scheduler.start(report, {}, execution_id="acme-2", tags={"tenant": "acme"})


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({"ten ant": "acme"}, "tag key 'ten ant' is not 1 to 64 letters"),
        ({"tenant:x": "acme"}, "tag key 'tenant:x' is not"),
        ({"": "acme"}, "tag key '' is not"),
        ({"tenant": 42}, "tag 'tenant' must be a string, not int"),
        ({"tenant": ""}, "the value of tag 'tenant' must not be empty"),
        ({"tenant": "a\x00b"}, "contains a NUL character"),
        ({"tenant": "x" * 256}, "at most 255 fit"),
        ({f"k{i}": "v" for i in range(33)}, "33 tags; at most 32 fit"),
        (["tenant", "acme"], "tags must map tag keys to strings, not list"),
    ],
)
async def test_a_bad_tag_is_refused_and_stores_nothing(
    scheduler: DurableScheduler, tags: Any, message: str
) -> None:
    with pytest.raises(zart.InvalidName, match=message):
        await scheduler.start(report, {}, execution_id="refused", tags=tags)
    with pytest.raises(
        zart.InvalidName, match=message.replace("tags must", "the tags filter must")
    ):
        await scheduler.list_executions(tags=tags)
    assert (await scheduler.list_executions()).total == 0


@pytest.fixture
async def client(scheduler: DurableScheduler) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ApiSettings(), scheduler=scheduler)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://zart") as client:
        yield client


async def test_tags_over_http(client: httpx.AsyncClient, scheduler: DurableScheduler) -> None:
    started = await client.post(
        "/api/v1/executions",
        json={
            "executionId": "h-1",
            "taskName": "tags-report",
            "payload": {},
            "tags": {"tenant": "acme"},
        },
    )
    assert started.status_code == 201, started.text
    assert started.json()["tags"] == {"tenant": "acme"}
    await scheduler.start(report, {}, execution_id="h-2", tags={"tenant": "acme", "env": "eu"})
    await scheduler.start(report, {}, execution_id="h-3")

    listed = await client.get("/api/v1/executions", params=[("tag", "tenant:acme")])
    assert sorted(e["durableExecutionId"] for e in listed.json()) == ["h-1", "h-2"]
    assert listed.headers["X-Total-Count"] == "2"
    both = await client.get(
        "/api/v1/executions", params=[("tag", "tenant:acme"), ("tag", "env:eu")]
    )
    assert [e["durableExecutionId"] for e in both.json()] == ["h-2"]
    # A value may hold ':' (only the first one splits).
    await scheduler.start(report, {}, execution_id="h-4", tags={"url": "https://x"})
    colon = await client.get("/api/v1/executions", params=[("tag", "url:https://x")])
    assert [e["durableExecutionId"] for e in colon.json()] == ["h-4"]

    for bad, text in [
        ("tenant", "tag 'tenant' is not key:value"),
        ("ten ant:acme", "tag key 'ten ant' is not"),
        ("tenant:", "the value of tag 'tenant' must not be empty"),
    ]:
        refused = await client.get("/api/v1/executions", params=[("tag", bad)])
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == "invalid_payload"
        assert text in refused.json()["error"]["message"]
    twice = await client.get("/api/v1/executions", params=[("tag", "a:1"), ("tag", "a:2")])
    assert twice.status_code == 422
    assert "tag 'a' is given twice" in twice.json()["error"]["message"]
    bad_start = await client.post(
        "/api/v1/executions",
        json={
            "executionId": "h-bad",
            "taskName": "tags-report",
            "payload": {},
            "tags": {"a b": "c"},
        },
    )
    assert bad_start.status_code == 422
    assert "tag key 'a b'" in bad_start.json()["error"]["message"]
    assert (await scheduler.list_executions()).total == 4


def _zart(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zart", *args, "--database-url", database_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_tags_through_the_cli(scheduler: DurableScheduler, database_url: str) -> None:
    module = "tests.integration.test_tags"
    started = _zart(
        database_url, "start", "tags-report", "--payload", "{}", "--execution-id", "c-1",
        "--tag", "tenant=acme", "--tag", "plan=pro", "--module", module, "--json",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["tags"] == {"plan": "pro", "tenant": "acme"}
    await scheduler.start(report, {}, execution_id="c-2", tags={"tenant": "globex"})

    listed = _zart(database_url, "list", "--tag", "tenant=acme", "--json")
    assert listed.returncode == 0, listed.stderr
    document = json.loads(listed.stdout)
    assert ([e["durableExecutionId"] for e in document["items"]], document["total"]) == (["c-1"], 1)
    shown = _zart(database_url, "status", "c-1")
    assert "  tags:    plan=pro, tenant=acme\n" in shown.stdout

    bad = _zart(database_url, "list", "--tag", "tenant")
    assert (bad.returncode, bad.stdout) == (1, "")
    assert bad.stderr == "error: --tag 'tenant' is not key=value\n"
    refused = _zart(
        database_url, "start", "tags-report", "--payload", "{}", "--tag", "a b=c",
        "--module", module,
    )  # fmt: skip
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: tag key 'a b' is not 1 to 64 letters")
    assert (await scheduler.list_executions()).total == 2
