"""A ``zart worker`` SIGKILLed while its execution writes a stream: the worker that takes the
execution over resumes the stream where it stood, and a reader following it from another
process sees every item exactly once, in order."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import zart
from tests.acceptance.stream_flow import stream_flow
from tests.processes import Process

ROOT = Path(__file__).resolve().parents[2]
COUNT = 300


def start_worker(database_url: str) -> Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    arguments = ["worker", "tests.acceptance.stream_flow", "--database-url", database_url]
    options = ["--lease-timeout", "2", "--poll-interval", "0.05"]
    return Process([sys.executable, "-m", "zart", *arguments, *options], cwd=ROOT, env=env)


async def test_a_worker_killed_mid_stream_is_resumed_without_duplicates(
    database_url: str,
) -> None:
    async with zart.DurableScheduler(database_url) as scheduler:
        execution_id = await scheduler.start(stream_flow, {"count": COUNT})
        seen: list[int] = []
        first = start_worker(database_url)
        second = None
        try:
            async for offset, item in scheduler.stream_entries(execution_id, "numbers"):
                assert offset == len(seen)
                seen.append(item["n"])
                if len(seen) == 40:  # mid-stream: kill it while it writes
                    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
                    second = start_worker(database_url)
            assert await scheduler.wait(execution_id, timeout=60) == COUNT
            record = await scheduler.status(execution_id)
        finally:
            first.stop(signal.SIGKILL)
            if second is not None:
                assert second.stop(signal.SIGTERM) == 0, second.stderr
        # The whole stream, read again from the start once finished.
        stored = [item["n"] async for item in scheduler.read_stream(execution_id, "numbers")]
        assert await scheduler.get_published(execution_id, "progress") == COUNT - 1

    assert second is not None, "the stream ended before the worker could be killed"
    assert record.claim_count == 2  # the kill did land mid-stream: a second worker finished it
    assert seen == list(range(COUNT))
    assert stored == list(range(COUNT))
