"""The safe-deploy routes through a real ASGI client on both backends: an execution held on a
replay divergence shows the verdict in its detail, ``resume-diverged`` replays it (after the
fix), ``fail-diverged`` fails it, and both refuse an execution no divergence holds."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.integration import test_divergence as flows
from zart import DurableScheduler, ExecutionStatus
from zart.api import ApiSettings, create_app

ADMIN = "/zart/admin/v1/executions"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def client(suspending: DurableScheduler, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    journal = tmp_path / "journal.txt"
    journal.write_text("")
    flows.JOURNAL[:] = [journal]
    app = create_app(ApiSettings(), scheduler=suspending)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://zart") as client:
        yield client


def cli(database_url: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    env["ZART_DATABASE_URL"] = database_url
    done = subprocess.run(
        [sys.executable, "-m", "zart", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_a_held_execution_through_the_http_api(
    client: httpx.AsyncClient, suspending: DurableScheduler, database_url: str
) -> None:
    async with suspending.run_worker(**flows.WORKER):
        held, hold = await flows._held(suspending, "rename")
        failing, _ = await flows._held(suspending, "kind")
        detail = (await client.get(f"{ADMIN}/{held}/detail")).json()
        status = await asyncio.to_thread(cli, database_url, "status", held)
        shown = await asyncio.to_thread(cli, database_url, "show", held)
        flows.CODE[held] = "old"  # the fix
        resumed = await client.post(f"{ADMIN}/{held}/resume-diverged", json={"triggeredBy": "ops"})
        assert resumed.status_code == 200, resumed.text
        assert await suspending.wait(held, timeout=10) == "done"  # "go" was delivered already
        failed = await client.post(f"{ADMIN}/{failing}/fail-diverged")

    assert detail["divergence"] == {
        "message": hold.reason,
        "detectedAt": detail["divergence"]["detectedAt"],
        "ruleId": hold.rule_id,
    }
    assert "'div-charge-v2'" in detail["divergence"]["message"]
    for text in (status, shown):
        assert "  held:    replay diverged (zart resume-diverged / zart fail-diverged): the" in text
        assert "'div-charge-v2'" in " ".join(text.split())
    assert detail["execution"]["status"] == "waiting"
    assert resumed.json()["ruleId"] == hold.rule_id
    assert resumed.json()["deletedBy"] == "ops"
    assert failed.status_code == 200, failed.text
    assert failed.json()["status"] == "failed"
    assert failed.json()["error"]["kind"] == "non_deterministic_replay"
    assert (await suspending.status(failing)).status is ExecutionStatus.FAILED
    assert (await client.get(f"{ADMIN}/{held}/detail")).json()["divergence"] is None

    for route in ("resume-diverged", "fail-diverged"):
        refused = await client.post(f"{ADMIN}/{held}/{route}")
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "invalid_execution_state"
        missing = await client.post(f"{ADMIN}/nope/{route}")
        assert missing.status_code == 404
        bad = await client.post(f"{ADMIN}/{held}/{route}", json={"triggeredBy": ""})
        assert bad.status_code == 422
    assert (await suspending.status(held)).status is ExecutionStatus.COMPLETED
