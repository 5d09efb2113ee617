"""A handler that kills its worker process on every try, beside 15 executions claimed in the
same batch: after ``max_claims`` claims it fails with a stored ``crash_loop`` error (``zart
show`` lists its crashed attempts, ``zart status`` and the HTTP API show it), and every one of
the 15 completes. Real ``zart worker`` processes, started again each time one dies, as a
supervisor would; the only waits are for a process to exit or executions to finish."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

import zart
from tests.acceptance.poison_flow import POISON_MAX_CLAIMS, innocent, poison, unlimited_poison
from zart.api import ApiSettings, create_app

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 1.0
INNOCENTS = 15
GUARD_SECONDS = 120  # against a hang, never reached by a passing run


def start_worker(database_url: str, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zart",
            "worker",
            "tests.acceptance.poison_flow",
            "--database-url",
            database_url,
            "--lease-timeout",
            str(LEASE_SECONDS),
            "--poll-interval",
            "0.05",
            *extra,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def zart_cli(*arguments: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    done = subprocess.run(
        [sys.executable, "-m", "zart", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def supervise(
    scheduler: zart.DurableScheduler, database_url: str, ids: list[str], *extra: str
) -> tuple[list[int], str]:
    """Run one worker process at a time until every execution of ``ids`` is finished,
    starting a new one whenever one dies; the exit codes of those that died, and all the
    workers wrote to stderr."""
    died: list[int] = []
    stderr = ""
    give_up = time.monotonic() + GUARD_SECONDS
    while time.monotonic() < give_up:
        worker = start_worker(database_url, *extra)
        try:
            while worker.poll() is None and time.monotonic() < give_up:
                records = [await scheduler.status(i) for i in ids]
                if all(r.is_terminal for r in records):
                    worker.send_signal(signal.SIGTERM)
                    break
                await asyncio.sleep(0.05)
        finally:
            if worker.poll() is None and time.monotonic() >= give_up:
                worker.kill()
            _, err = await asyncio.to_thread(worker.communicate, timeout=60)
            stderr += err
        if worker.returncode != 0:
            died.append(worker.returncode)
            continue
        return died, stderr
    raise AssertionError(f"the executions never all finished: {stderr}")


async def test_a_poison_execution_fails_as_a_crash_loop_and_its_batch_mates_complete(
    database_url: str, tmp_path: Path
) -> None:
    marker = str(tmp_path / "poison-ran")
    async with zart.DurableScheduler(database_url) as scheduler:
        # All started before any worker runs: the first claim takes the 16 in one batch.
        poison_id = await scheduler.start(poison, {"marker": marker})
        innocent_ids = [
            await scheduler.start(innocent, {"marker": marker, "n": n}) for n in range(INNOCENTS)
        ]

        died, stderr = await supervise(scheduler, database_url, [poison_id, *innocent_ids])

        failed = await scheduler.status(poison_id)
        innocents = [await scheduler.status(i) for i in innocent_ids]
        app = create_app(ApiSettings(), scheduler=scheduler)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://zart") as client:
            answer = await client.get(f"/api/v1/executions/{poison_id}")

    # Each of its claims but the last killed a worker; the last failed it instead of running.
    assert died == [-signal.SIGKILL] * POISON_MAX_CLAIMS
    assert failed.status is zart.ExecutionStatus.FAILED
    assert failed.error["kind"] == "crash_loop"
    assert failed.error["claims"] == failed.error["max_claims"] == POISON_MAX_CLAIMS
    assert failed.error["steps"] == ["explode"]
    assert [c["attempt"] for c in failed.error["crashes"]] == list(range(POISON_MAX_CLAIMS))
    assert (failed.claim_count, failed.crashed_claims) == (POISON_MAX_CLAIMS + 1, 3)
    # Every innocent was in flight in the worker that died first, and completed all the same.
    assert [r.status for r in innocents] == [zart.ExecutionStatus.COMPLETED] * INNOCENTS
    assert [r.result for r in innocents] == list(range(INNOCENTS))
    assert all(r.claim_count >= 2 for r in innocents)

    assert answer.status_code == 200
    body = answer.json()
    assert (body["status"], body["error"]["kind"], body["crashedClaims"]) == (
        "failed",
        "crash_loop",
        POISON_MAX_CLAIMS,
    )
    assert "execution_crash_loop" in stderr  # the log line of the worker that failed it
    assert "execution_taken_over" in stderr

    shown = zart_cli("show", poison_id, "--database-url", database_url)
    attempts = re.findall(r"^\s+attempt (\d+): (\w+)", shown, flags=re.MULTILINE)
    assert attempts == [(str(n), "crashed") for n in range(POISON_MAX_CLAIMS)], shown
    assert "crash_loop" in shown
    status = zart_cli("status", poison_id, "--database-url", database_url)
    assert f"crashes: {POISON_MAX_CLAIMS} claim(s) in a row" in status


async def test_the_workers_max_claims_applies_to_a_handler_without_its_own(
    database_url: str, tmp_path: Path
) -> None:
    marker = str(tmp_path / "poison-ran")
    async with zart.DurableScheduler(database_url) as scheduler:
        poison_id = await scheduler.start(unlimited_poison, {"marker": marker})

        died, _ = await supervise(scheduler, database_url, [poison_id], "--max-claims", "1")

        failed = await scheduler.status(poison_id)

    assert died == [-signal.SIGKILL]  # one claim ended unreported; the next failed it
    assert failed.status is zart.ExecutionStatus.FAILED
    assert failed.error["kind"] == "crash_loop"
    assert (failed.error["claims"], failed.error["max_claims"]) == (1, 1)
    # With max_claims 1 no claim ran it after the crash: the step in flight is not known.
    assert failed.error["steps"] == []
