"""``zart worker`` prints its actions at INFO with no logging configured by the application,
as text or one JSON object per line (through the entry point, a real process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import zart
from tests.acceptance.cli_handlers import greet
from zart.database import mask_url

ROOT = Path(__file__).resolve().parents[2]


def worker(
    database_url: str, *options: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zart",
            "worker",
            "tests.acceptance.cli_handlers",
            "--database-url",
            database_url,
            "--poll-interval",
            "0.05",
            *options,
        ],
        cwd=ROOT,
        env={**clean, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def run_one(database_url: str, *options: str, env: dict[str, str] | None = None) -> str:
    """Run a ``greet`` execution on a worker process; the worker's stderr once it stopped."""
    async with zart.DurableScheduler(database_url) as scheduler:
        execution_id = await scheduler.start(greet, {"name": "ada"}, execution_id="logged")
        process = worker(database_url, *options, env=env)
        try:
            assert await scheduler.wait(execution_id, timeout=60) == {"greeting": "HELLO ADA"}
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    return stderr


async def test_the_worker_prints_its_actions_as_text_by_default(database_url: str) -> None:
    stderr = await run_one(database_url)
    claimed = [line for line in stderr.splitlines() if " execution_claimed: " in line]
    assert len(claimed) == 1, stderr
    assert " INFO zart execution_claimed: execution claimed execution_id=logged" in claimed[0]
    assert "task_name=greet" in claimed[0]
    succeeded = [line for line in stderr.splitlines() if " step_succeeded: " in line]
    assert len(succeeded) == 1, stderr
    assert "step_name=shout" in succeeded[0]
    assert "task_name=greet" in succeeded[0]
    assert any(" execution_completed: " in line for line in stderr.splitlines()), stderr


@pytest.mark.parametrize("how", ["option", "environment"])
async def test_json_logs_are_one_object_per_line(database_url: str, how: str) -> None:
    if how == "option":
        stderr = await run_one(database_url, "--log-format", "json")
    else:
        stderr = await run_one(database_url, env={"ZART_LOG_FORMAT": "json"})
    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    by_action = {record.get("action"): record for record in records}
    assert by_action["execution_claimed"]["execution_id"] == "logged", stderr
    assert by_action["execution_claimed"]["task_name"] == "greet"
    assert by_action["execution_claimed"]["level"] == "INFO"
    assert by_action["step_succeeded"]["step_name"] == "shout"
    assert "execution_completed" in by_action
    # Every action line names its subject (null where none applies).
    actions = [record for record in records if "action" in record]
    for record in actions:
        assert {"execution_id", "task_name", "step_name"} <= record.keys(), record
    assert by_action["execution_completed"]["execution_id"] == "logged"
    assert by_action["execution_completed"]["task_name"] == "greet"
    # The start line says which database (its password masked), handlers, concurrency.
    started = by_action["worker_started"]
    assert started["database"] == mask_url(database_url)
    assert "greet" in started["tasks"]
    assert started["concurrency"] == 64
    assert started["execution_id"] is None


async def test_a_higher_level_hides_the_info_lines(database_url: str) -> None:
    stderr = await run_one(database_url, "--log-level", "warning")
    assert "execution_claimed" not in stderr


def test_the_start_line_masks_the_password() -> None:
    # Nothing listens there: the worker fails to connect, after its start line names it.
    url = "postgresql+asyncpg://zart:hunter2@127.0.0.1:1/zart"
    process = worker(url, "--log-format", "json")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "hunter2" not in stderr
    assert "zart:***@127.0.0.1:1/zart" in stderr


def test_a_bad_log_format_is_one_error_line() -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "zart",
            "worker",
            "tests.acceptance.cli_handlers",
            "--log-format",
            "xml",
        ],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "error: --log-format must be text or json, not 'xml'"
