"""Messages as users send them: five messages before and during a recv loop arrive in order,
each once, across a worker SIGKILL (worker processes, both backends); the HTTP route and
``zart message send`` deliver and refuse bad input storing nothing; a child's result cannot
be forged through the events route; ``parentExecutionId`` and ``children`` over HTTP and in
``zart show``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

import zart
from tests.acceptance.messages_flow import acc_inbox, acc_parent_of_child
from tests.acceptance.test_cli_executions import error_line, ok
from tests.acceptance.test_cli_executions import zart as zart_cli
from tests.journal import journal_lines, wait_for_line
from tests.processes import Process, running
from zart import DurableScheduler
from zart.api import ApiSettings, create_app
from zart.repositories.children import child_event_name, child_execution_id

ROOT = Path(__file__).resolve().parents[2]
WORKER = {"poll_interval": 0.02, "lease_timeout": 5.0, "claim_ahead": 0.0}


def start_worker(database_url: str, *, hang: bool) -> Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    env["MESSAGES_FLOW_HANG"] = "1" if hang else "0"
    arguments = [sys.executable, "-m", "zart", "worker", "tests.acceptance.messages_flow"]
    arguments += ["--database-url", database_url, "--lease-timeout", "2", "--poll-interval", "0.05"]
    return Process(arguments, cwd=ROOT, env=env)


async def test_five_messages_arrive_in_order_once_across_a_worker_kill(
    database_url: str, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.log"
    async with DurableScheduler(database_url) as scheduler:
        execution_id = await scheduler.start(acc_inbox, {"journal": str(journal), "count": 5})
        await scheduler.send(execution_id, "items", {"n": 1})
        await scheduler.send(execution_id, "items", {"n": 2})
        first = start_worker(database_url, hang=True)
        try:
            await scheduler.send(execution_id, "items", {"n": 3})
            await wait_for_line(journal, "hanging")
            await scheduler.send(execution_id, "items", {"n": 4})
        finally:
            assert first.stop(signal.SIGKILL) == -signal.SIGKILL
        second = start_worker(database_url, hang=False)
        try:
            await wait_for_line(journal, "got 4")
            await scheduler.send(execution_id, "items", {"n": 5})
            assert await scheduler.wait(execution_id, timeout=60) == [1, 2, 3, 4, 5]
        finally:
            second.stop()
    got = [line for line in journal_lines(journal) if line.startswith("got")]
    assert got == [f"got {n}" for n in range(1, 6)]


@pytest.fixture
async def client(scheduler: DurableScheduler) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ApiSettings(max_body_bytes=4096), scheduler=scheduler)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://zart") as client:
        yield client


async def test_messages_over_http(
    client: httpx.AsyncClient, scheduler: DurableScheduler, tmp_path: Path
) -> None:
    journal = str(tmp_path / "journal.log")
    async with scheduler.run_worker(**WORKER):
        execution_id = await scheduler.start(acc_inbox, {"journal": journal, "count": 2})
        url = f"/api/v1/executions/{execution_id}/messages"
        sent = await client.post(f"{url}/items", json={"n": 1})
        assert sent.status_code == 202, sent.text
        assert sent.json() == {
            "durableExecutionId": execution_id,
            "topic": "items",
            "message": {"n": 1},
            "accepted": True,
        }
        refused = [
            await client.post("/api/v1/executions/nope/messages/items", json={"n": 0}),
            await client.post(f"{url}/{quote('a/b', safe='')}", json={"n": 0}),
            await client.post(f"{url}/{'t' * 201}", json={"n": 0}),
            await client.post(
                f"{url}/items", content=b"{not json", headers={"content-type": "application/json"}
            ),
        ]
        assert [r.status_code for r in refused] == [404, 404, 422, 422]
        assert refused[0].json()["error"]["code"] == "execution_not_found"
        assert not [
            e
            for e in (await scheduler.execution_detail(execution_id)).events
            if e.payload != {"n": 1}
        ]
        assert (await client.post(f"{url}/items", json={"n": 2})).status_code == 202
        assert await scheduler.wait(execution_id, timeout=20) == [1, 2]
        finished = await client.post(f"{url}/items", json={"n": 3})
    assert finished.status_code == 409
    assert finished.json()["error"]["code"] == "event_not_accepted"


async def test_a_childs_result_cannot_be_forged_over_http_and_the_link_shows(
    client: httpx.AsyncClient, scheduler: DurableScheduler, tmp_path: Path
) -> None:
    journal = str(tmp_path / "journal.log")
    async with scheduler.run_worker(**WORKER):
        parent = await scheduler.start(acc_parent_of_child, {"journal": journal})
        child = child_execution_id(parent, 0)
        forged = quote(child_event_name(child), safe="")
        for _ in range(500):
            if (await client.get(f"/api/v1/executions/{child}")).status_code == 200:
                break
            await asyncio.sleep(0.01)
        answer = await client.post(
            f"/api/v1/events/{parent}/{forged}", json={"status": "completed", "result": [9]}
        )
        assert answer.status_code in (404, 422), answer.text
        assert not (await scheduler.execution_detail(parent)).events
        await scheduler.send(child, "items", {"n": 7})
        assert await scheduler.wait(parent, timeout=20) == [7]
        shown = (await client.get(f"/api/v1/executions/{child}")).json()
        detail = (await client.get(f"/zart/admin/v1/executions/{parent}/detail")).json()
    assert shown["parentExecutionId"] == parent
    assert [c["durableExecutionId"] for c in detail["children"]] == [child]
    assert detail["execution"]["parentExecutionId"] is None


async def cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``zart ARGS`` in a thread: the in-process worker keeps running meanwhile (a blocked
    event loop would hold its transactions, and their row locks, open)."""
    return await asyncio.to_thread(zart_cli, database_url, *args)


async def test_zart_message_send_and_zart_show(database_url: str, tmp_path: Path) -> None:
    journal = str(tmp_path / "journal.log")
    async with DurableScheduler(database_url) as scheduler:
        parent = await scheduler.start(acc_parent_of_child, {"journal": journal})
        async with scheduler.run_worker(**WORKER):
            child = child_execution_id(parent, 0)
            for _ in range(500):
                try:
                    await scheduler.status(child)
                    break
                except zart.ExecutionNotFound:
                    await asyncio.sleep(0.01)
            assert "error:" in error_line(
                await cli(database_url, "message", "send", child, "items", "{oops")
            )
            assert "topic" in error_line(
                await cli(database_url, "message", "send", child, "a/b", "1")
            )
            assert "no execution" in error_line(
                await cli(database_url, "message", "send", "nope", "items", "1")
            )
            sent = ok(
                await cli(database_url, "message", "send", child, "items", '{"n": 4}', "--json")
            )
            assert json.loads(sent)["message"] == {"n": 4}
            assert await scheduler.wait(parent, timeout=30) == [4]
        events = (await scheduler.execution_detail(child)).events
    assert [e.payload for e in events] == [{"n": 4}]
    shown = ok(await cli(database_url, "show", parent))
    assert "Children: 1" in shown
    assert child in shown
    assert f"parent:  execution {parent!r}" in ok(await cli(database_url, "status", child))


def test_a_sync_app_sends_messages(database_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    arguments = [sys.executable, "-m", "zart", "worker", "tests.acceptance.messages_flow"]
    env = {**env, "ZART_DATABASE_URL": database_url, "ZART_POLL_INTERVAL": "0.05"}
    with (
        running(arguments, cwd=ROOT, env=env, ready=" running "),
        zart.DurableScheduler(database_url).sync() as sync,
    ):
        journal = str(tmp_path / "journal.log")
        execution_id = sync.start(acc_inbox, {"journal": journal, "count": 2})
        sync.send(execution_id, "items", {"n": 1})
        sync.send(execution_id, "items", {"n": 2}, sender="flask")
        assert sync.wait(execution_id, timeout=30) == [1, 2]
        with pytest.raises(zart.InvalidName):
            sync.send(execution_id, "a/b", {"n": 3})
