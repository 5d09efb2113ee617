"""``zart show``, ``zart status`` and ``zart list`` through the entry point, on what operators
look at: an event wait with its deadline (not a sleep), the event's arrival time and sender,
a cancelled execution's wait no longer pending, stored values rendered as plain JSON (no
``$zart`` encoding, no Python repr), and a long error wrapped, never cut."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import zart
from tests.acceptance.show_handlers import LONG_REASON, order
from zart.models import ExecutionStatus

ROOT = Path(__file__).resolve().parents[2]
WORKER = {"poll_interval": 0.02, "claim_ahead": 0.0}


def zart_cli(database_url: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    result = subprocess.run(
        [sys.executable, "-m", "zart", *args],
        cwd=ROOT,
        env={**env, "ZART_DATABASE_URL": database_url, "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def cli(database_url: str, *args: str) -> str:
    return await asyncio.to_thread(zart_cli, database_url, *args)


async def waiting(scheduler: zart.DurableScheduler, execution_id: str) -> zart.ExecutionRecord:
    for _ in range(1000):
        record = await scheduler.status(execution_id)
        if record.status is ExecutionStatus.WAITING:
            return record
        await asyncio.sleep(0.01)
    raise AssertionError(f"{execution_id} never waited")


async def test_an_event_wait_its_arrival_and_sender(database_url: str) -> None:
    async with zart.DurableScheduler(database_url, inline_wait_limit=0) as scheduler:
        async with scheduler.run_worker(task_names=[order.name], **WORKER):
            execution_id = await scheduler.start(order, "lamp", execution_id="order-1")
            await waiting(scheduler, execution_id)

            shown = await cli(database_url, "show", execution_id)
            status = await cli(database_url, "status", execution_id)
            listed = await cli(database_url, "list")

            await cli(
                database_url, "event", "send", execution_id, "approval", "--payload",
                '"approved"', "--sender", "ops@example.com",
            )  # fmt: skip
            assert await scheduler.wait(execution_id, timeout=30) == "approved"
        done = await cli(database_url, "show", execution_id)

    # While it waits: an event wait with its deadline, in show, status and list alike.
    deadline = r"\(deadline 2\d{3}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)"
    assert re.search(rf"       waiting for event 'approval' {deadline}\n", shown), shown
    assert "sleep" not in shown
    assert re.search(rf"\n  waits:   event 'approval' {deadline}\n", status), status
    assert re.search(rf"order-1 .* waiting .* event 'approval' {deadline}\n", listed), listed
    # One rendering of stored values: JSON, the tuple and the datetime read back from tags.
    assert '       result: ["lamp", "2030-01-02T03:04:05+00:00"]\n' in shown, shown
    assert "$zart" not in shown
    # Once delivered: when it arrived and who sent it.
    arrived = r"arrived \+[\d.]+ m?s \(2\d{3}-[\d-]+ [\d:]+ UTC\) from ops@example.com"
    assert re.search(rf"\n       {arrived}\n       payload: \"approved\"\n", done), done
    assert re.search(rf"\nEvents: 1, in the order they arrived\n  'approval': {arrived}", done)


async def test_a_cancelled_executions_wait_is_no_longer_pending(database_url: str) -> None:
    async with (
        zart.DurableScheduler(database_url, inline_wait_limit=0) as scheduler,
        scheduler.run_worker(task_names=[order.name], **WORKER),
    ):
        execution_id = await scheduler.start(order, "desk", execution_id="order-2")
        await waiting(scheduler, execution_id)
        assert await scheduler.cancel(execution_id)

    shown = await cli(database_url, "show", execution_id)
    status = await cli(database_url, "status", execution_id)

    assert re.search(r"\n  2  approval \(event\) +cancelled ", shown), shown
    assert "       no longer awaited: the execution was cancelled at " in shown
    assert "waiting for" not in shown
    assert "waits:" not in status


async def test_a_long_error_wraps_and_is_never_cut(database_url: str) -> None:
    async with (
        zart.DurableScheduler(database_url, inline_wait_limit=0) as scheduler,
        scheduler.run_worker(task_names=[order.name], **WORKER),
    ):
        execution_id = await scheduler.start(order, "vase", execution_id="order-3")
        await waiting(scheduler, execution_id)
        await scheduler.offer_event(execution_id, "approval", "refused")
        record = await scheduler.wait_finished(execution_id, timeout=30)
        assert record.status is ExecutionStatus.FAILED

    shown = await cli(database_url, "show", execution_id)
    status = await cli(database_url, "status", execution_id)

    for text in (shown, status):
        assert "..." not in text
        wrapped = [line for line in text.splitlines() if re.search("card|issuer|frozen", line)]
        assert len(wrapped) > 3, text
        assert all(len(line) <= 80 for line in wrapped), text  # COLUMNS=80
        # Every word of the reason is there, in order, across the wrapped lines.
        assert LONG_REASON in " ".join(text.split()), text
    assert "\n  error:   step_failed in 'show-charge': PermissionError: the card" in status
