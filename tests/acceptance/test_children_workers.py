"""Child executions across real worker processes (both backends): a parent whose worker is
SIGKILLed after it started its child resumes on another worker without starting a second
child, and a fan-out of 100 children over 4 worker processes runs each child once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import zart
from tests.acceptance.children_flow import acc_fan_out, acc_parent
from tests.journal import journal_lines, wait_for_line
from tests.processes import Process

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 2.0


def start_worker(database_url: str, *, hang: bool = False, concurrency: int = 16) -> Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    env["CHILDREN_FLOW_HANG"] = "1" if hang else "0"
    return Process(
        [
            sys.executable,
            "-m",
            "zart",
            "worker",
            "tests.acceptance.children_flow",
            "--database-url",
            database_url,
            "--lease-timeout",
            str(LEASE_SECONDS),
            "--poll-interval",
            "0.05",
            "--concurrency",
            str(concurrency),
        ],
        cwd=ROOT,
        env=env,
    )


async def _until_child_completed(scheduler: zart.DurableScheduler, within: float = 60) -> None:
    give_up = time.monotonic() + within
    while time.monotonic() < give_up:
        page = await scheduler.list_executions(task_name="acc-child")
        if any(e.status is zart.ExecutionStatus.COMPLETED for e in page.items):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the child never completed beside its hanging parent")


async def test_a_killed_parent_resumes_without_starting_a_second_child(
    database_url: str, tmp_path: Path
) -> None:
    journal = tmp_path / "side-effects.log"
    async with zart.DurableScheduler(database_url) as scheduler:
        parent = await scheduler.start(acc_parent, {"journal": str(journal)})
        first = start_worker(database_url, hang=True)
        try:
            await wait_for_line(journal, "parent hang", prefix=True)
            # The child runs beside the hanging parent; killed before its step is stored, it
            # would rightly run that step again (at least once). The kill is for the parent.
            await _until_child_completed(scheduler)
        finally:
            assert first.stop(signal.SIGKILL) == -signal.SIGKILL
        second = start_worker(database_url)
        try:
            assert await scheduler.wait(parent, timeout=60) == 49
        finally:
            second.stop()
        children = (await scheduler.execution_detail(parent)).children
        page = await scheduler.list_executions(task_name="acc-child")
    assert [c.status for c in children] == [zart.ExecutionStatus.COMPLETED]
    assert page.total == 1
    lines = [line.rsplit(" ", 1)[0] for line in journal_lines(journal)]
    assert lines.count("child 7") == 1
    assert lines.count("parent hang") == 2  # the step in flight at the kill ran again


async def test_a_fan_out_of_100_children_over_4_workers_runs_each_child_once(
    database_url: str, tmp_path: Path
) -> None:
    journal = tmp_path / "side-effects.log"
    workers = [start_worker(database_url, concurrency=8) for _ in range(4)]
    try:
        async with zart.DurableScheduler(database_url) as scheduler:
            parent = await scheduler.start(acc_fan_out, {"journal": str(journal), "children": 100})
            assert await scheduler.wait(parent, timeout=240) == sum(n * n for n in range(100))
            detail = await scheduler.execution_detail(parent)
    finally:
        for worker in workers:
            worker.stop()
    assert len(detail.children) == 100
    assert {c.status for c in detail.children} == {zart.ExecutionStatus.COMPLETED}
    runs = Counter(line.rsplit(" ", 1)[0] for line in journal_lines(journal))
    assert runs == Counter({f"child {n}": 1 for n in range(100)})
    pids = {line.rsplit(" ", 1)[1] for line in journal_lines(journal)}
    assert len(pids) > 1, "every child ran on one worker: nothing fanned out"
