"""``zart retry-step``, ``restart``, ``rerun`` and ``pause add|list|remove`` through the entry
point on both backends: readable output, ``--json`` documents of the HTTP API, and its errors
(one line, exit code 1, nothing changed). Also ``--payload`` left out of ``start`` and ``event
send``, and the note ``start`` prints when it could not validate a payload."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import httpx

from tests.acceptance import cli_handlers
from tests.acceptance.test_cli_worker import zart
from tests.integration.runtime_helpers import FAST_WORKER
from zart import DurableScheduler
from zart.api import ApiSettings, create_app

assert cli_handlers  # its handlers register on import: the in-process worker runs them


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def refused(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0].removeprefix("error: ")


async def _http_message(scheduler: DurableScheduler, path: str, body: Any) -> str:
    app = create_app(ApiSettings(api_token=""), scheduler=scheduler)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://zart") as client:
        answer = await client.post(path, json=body)
    assert answer.status_code >= 400
    message: str = answer.json()["error"]["message"]
    return message


async def _finished(scheduler: DurableScheduler, execution_id: str) -> str:
    for _ in range(3000):
        status = (await scheduler.status(execution_id)).status.value
        if status in ("completed", "failed", "cancelled"):
            return status
        await asyncio.sleep(0.01)
    raise AssertionError(f"{execution_id} did not finish")


async def test_admin_commands_through_the_entry_point(
    scheduler: DurableScheduler, database_url: str
) -> None:
    db = ["--database-url", database_url]
    async with scheduler.run_worker(**FAST_WORKER):
        await scheduler.start("greet", {"name": "ada"}, execution_id="greet-1")
        await scheduler.start("doomed", {"name": "bob"}, execution_id="doomed-1")
        assert await _finished(scheduler, "greet-1") == "completed"
        assert await _finished(scheduler, "doomed-1") == "failed"

        # start by name with no --module: a live worker serves it, the payload is not
        # validated here, and the note says so.
        started = await asyncio.to_thread(
            zart, "start", "greet", "--payload", '{"name": "cy"}', "--execution-id", "g-2", *db
        )
        assert "started g-2" in ok(started)
        assert "payload was not validated here" in started.stderr
        assert await _finished(scheduler, "g-2") == "completed"

    # retry-step: the HTTP API's errors, word for word.
    expected = await _http_message(
        scheduler, "/zart/admin/v1/executions/greet-1/retry-step", {"stepName": "shout"}
    )
    assert refused(zart("retry-step", "greet-1", "shout", *db)) == expected
    assert "no execution" in refused(zart("retry-step", "nope", "shout", *db))
    assert "step" in refused(zart("retry-step", "doomed-1", "no-such-step", *db))
    assert (await scheduler.status("doomed-1")).status.value == "failed"  # nothing changed
    retried = json.loads(
        ok(zart("retry-step", "doomed-1", "flaky", "--triggered-by", "ops", "--json", *db))
    )
    assert retried["newTaskId"].endswith(":flaky:2")
    assert (await scheduler.status("doomed-1")).status.value == "scheduled"

    # restart and rerun.
    assert "not valid JSON" in refused(zart("restart", "greet-1", "--payload", "{", *db))
    restarted = ok(zart("restart", "greet-1", "--payload", '{"name": "bo"}', *db))
    assert restarted.startswith("restarted greet-1: run 2 (")
    assert (await scheduler.status("greet-1")).payload == {"name": "bo"}
    answer = json.loads(ok(zart("restart", "greet-1", "--json", *db)))
    runs = (await scheduler.execution_detail("greet-1")).runs
    assert answer == {"newRunId": runs[-1].run_id}
    assert [r.trigger.value for r in runs] == ["initial", "restart", "restart"]

    async with scheduler.run_worker(**FAST_WORKER):
        assert await _finished(scheduler, "greet-1") == "completed"
    rerun_message = await _http_message(
        scheduler, "/zart/admin/v1/executions/greet-1/rerun", {"preserveSteps": ["nope"]}
    )
    assert refused(zart("rerun", "greet-1", "--preserve", "nope", *db)) == rerun_message
    rerun = json.loads(ok(zart("rerun", "greet-1", "--step", "shout", "--json", *db)))
    assert rerun == {"newRunNumber": 4, "effectiveRerun": ["shout"]}
    assert "no execution" in refused(zart("rerun", "nope", "--step", "shout", *db))


async def test_pause_commands_through_the_entry_point(
    scheduler: DurableScheduler, database_url: str
) -> None:
    db = ["--database-url", database_url]
    assert "needs an execution id" in refused(zart("pause", "add", *db))
    assert "--expires-in" in refused(zart("pause", "add", "--task", "t", "--expires-in", "x", *db))
    assert ok(zart("pause", "list", *db)) == "no pause rules\n"

    rule = json.loads(
        ok(
            zart(
                *["pause", "add", "--task", "greet", "--step-pattern", "sh*", "--reason", "psp"],
                *["--expires-in", "1h", "--triggered-by", "ops", "--json", *db],
            )
        )
    )
    assert (rule["taskName"], rule["stepPattern"], rule["createdBy"]) == ("greet", "sh*", "ops")
    assert rule["expiresAt"] is not None
    other = ok(zart("pause", "add", "--execution-id", "e-1", *db))
    assert other.startswith("added pause rule ")
    assert "(execution e-1)" in other

    listed = ok(zart("pause", "list", *db)).splitlines()
    assert listed[0].split()[:3] == ["RULE", "ID", "HOLDS"]
    assert any(line.startswith(rule["ruleId"]) and "task greet" in line for line in listed)
    documents = json.loads(ok(zart("pause", "list", "--json", *db)))
    assert {d["ruleId"] for d in documents} == {rule["ruleId"], other.split()[3]}

    assert (
        ok(zart("pause", "remove", rule["ruleId"], *db)) == f"removed pause rule {rule['ruleId']}\n"
    )
    assert "pause rule" in refused(zart("pause", "remove", rule["ruleId"], *db))
    remaining = json.loads(ok(zart("pause", "list", "--json", *db)))
    assert [d["ruleId"] for d in remaining] == [other.split()[3]]
    audit = json.loads(ok(zart("pause", "list", "--all", "--json", *db)))
    assert {d["ruleId"] for d in audit} == {rule["ruleId"], other.split()[3]}


async def test_payload_is_optional_for_start_and_event_send(
    scheduler: DurableScheduler, database_url: str
) -> None:
    db = ["--database-url", database_url]
    module = ["--module", "tests.acceptance.cli_handlers"]
    refusal = refused(zart("start", "greet", *module, *db))  # null does not fit its input
    assert "invalid payload for task 'greet'" in refusal
    assert await scheduler.list_executions() is not None
    assert (await scheduler.list_executions()).total == 0
    ok(
        zart(
            "start",
            "approval",
            "--payload",
            '{"name": "di"}',
            "--execution-id",
            "ap-1",
            *module,
            *db,
        )
    )
    sent = ok(zart("event", "send", "ap-1", "decision", *db))
    assert sent == "event 'decision' delivered to execution ap-1\n"
    assert "already" in refused(zart("event", "send", "ap-1", "decision", *db))
