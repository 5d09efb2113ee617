"""A worker process killed with SIGKILL in the middle of a 5-step execution: a second worker
takes the execution over once the lease expires, and finished steps never run again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import zart
from tests.acceptance.crash_flow import crash_flow
from tests.journal import journal_lines, wait_for_line

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 2.0


def start_worker(database_url: str, *, hang: bool) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    env["CRASH_FLOW_HANG"] = "1" if hang else "0"
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zart",
            "worker",
            "tests.acceptance.crash_flow",
            "--database-url",
            database_url,
            "--lease-timeout",
            str(LEASE_SECONDS),
            "--poll-interval",
            "0.05",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_a_killed_worker_is_taken_over_and_finished_steps_run_once(
    database_url: str, tmp_path: Path
) -> None:
    journal = tmp_path / "side-effects.log"
    async with zart.DurableScheduler(database_url) as scheduler:
        execution_id = await scheduler.start(crash_flow, {"journal": str(journal)})

        first = start_worker(database_url, hang=True)
        try:
            await wait_for_line(journal, "start 3", within=30)
        finally:
            first.send_signal(signal.SIGKILL)
            first.communicate(timeout=10)
        killed_at = time.monotonic()
        assert first.returncode == -signal.SIGKILL
        assert (await scheduler.status(execution_id)).status is zart.ExecutionStatus.RUNNING

        second = start_worker(database_url, hang=False)
        try:
            result = await scheduler.wait(execution_id, timeout=30)
            finished_at = time.monotonic()
        finally:
            second.send_signal(signal.SIGTERM)
            _, stderr = second.communicate(timeout=30)
        record = await scheduler.status(execution_id)

    assert second.returncode == 0, stderr
    assert result == 15
    assert record.status is zart.ExecutionStatus.COMPLETED
    assert record.claim_count == 2  # one claim by each worker
    # The takeover waited for the dead worker's lease to expire.
    assert finished_at - killed_at >= LEASE_SECONDS * 0.5
    lines = Counter(journal_lines(journal))
    assert lines == {
        "start 1": 1,
        "done 1": 1,
        "start 2": 1,
        "done 2": 1,
        "start 3": 2,  # in flight when the worker died: run again (at-least-once)
        "done 3": 1,
        "start 4": 1,
        "done 4": 1,
        "start 5": 1,
        "done 5": 1,
    }
