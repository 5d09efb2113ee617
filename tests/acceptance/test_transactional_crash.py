"""A worker SIGKILLed inside a transactional step, after its write and before it returns: the
write dies with the worker, the takeover runs the step again, and exactly one copy of every
step's write is left, with the workflow finished."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from sqlalchemy import select

import zart
from tests.acceptance.test_crash_recovery import ROOT, journal_lines, wait_for_line
from tests.acceptance.transactional_crash_flow import (
    app_metadata,
    charges,
    transactional_crash_flow,
)
from zart.database import create_engine

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
            "tests.acceptance.transactional_crash_flow",
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


async def test_a_transactional_step_killed_mid_way_leaves_exactly_one_copy(
    database_url: str, tmp_path: Path
) -> None:
    journal = tmp_path / "side-effects.log"
    engine = create_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(app_metadata.create_all)

    async def written() -> list[str]:
        async with engine.connect() as conn:
            return list(await conn.scalars(select(charges.c.entry).order_by(charges.c.id)))

    try:
        async with zart.DurableScheduler(engine=engine) as scheduler:
            execution_id = await scheduler.start(
                transactional_crash_flow, {"journal": str(journal)}
            )
            first = start_worker(database_url, hang=True)
            try:
                await wait_for_line(journal, "wrote 2")
            finally:
                first.send_signal(signal.SIGKILL)
                first.communicate(timeout=10)
            assert first.returncode == -signal.SIGKILL
            after_kill = await written()

            second = start_worker(database_url, hang=False)
            try:
                result = await scheduler.wait(execution_id, timeout=30)
            finally:
                second.send_signal(signal.SIGTERM)
                _, stderr = second.communicate(timeout=30)
            record = await scheduler.status(execution_id)
            rows = await written()
    finally:
        await engine.dispose()

    assert second.returncode == 0, stderr
    assert after_kill == ["charge 1"]  # step 2's write died with the worker
    assert result == 6
    assert record.status is zart.ExecutionStatus.COMPLETED
    assert Counter(rows) == {"charge 1": 1, "charge 2": 1, "charge 3": 1}
    # The step in flight did run twice; only one of its runs committed.
    assert Counter(journal_lines(journal))["wrote 2"] == 2
