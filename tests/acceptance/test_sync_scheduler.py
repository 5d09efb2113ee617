"""The synchronous facade as a Flask-style app uses it: no event loop in the caller, a real
``zart worker`` process running the handlers, blocking start/status/offer_event/wait/cancel."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import zart
from tests.acceptance.cli_handlers import Approval, Greeting, approval, greet
from tests.processes import running

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker(database_url: str) -> Iterator[None]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    with running(
        [sys.executable, "-m", "zart", "worker", "tests.acceptance.cli_handlers"],
        cwd=ROOT,
        env={**env, "ZART_DATABASE_URL": database_url, "ZART_POLL_INTERVAL": "0.05"},
        ready=" running ",
    ):
        yield


def test_a_sync_app_starts_reads_signals_waits_and_cancels(database_url: str, worker: None) -> None:
    with zart.DurableScheduler(database_url).sync() as sync:
        execution_id = sync.start(approval, Greeting(name="ada"))
        assert sync.status(execution_id).task_name == "approval"
        sync.offer_event(execution_id, "decision", Approval(approved=True, by="bob"))
        assert sync.wait(execution_id, timeout=30) == "ada: approved by bob"
        assert sync.status(execution_id).status is zart.ExecutionStatus.COMPLETED

        # Many threads at once, each blocking on its own call only.
        with ThreadPoolExecutor(4) as threads:
            started = list(threads.map(lambda n: sync.start(greet, Greeting(name=n)), "wxyz"))
            results = list(threads.map(lambda e: sync.wait(e, timeout=30), started))
        assert results == [{"greeting": f"HELLO {n.upper()}"} for n in "wxyz"]

        pending = sync.start(approval, Greeting(name="eve"))
        assert sync.cancel(pending) is True
        with pytest.raises(zart.ExecutionCancelled):
            sync.wait(pending, timeout=30)
        assert sync.cancel(pending) is False  # already finished
        with pytest.raises(zart.ExecutionNotFound):  # errors come through as they are
            sync.status("no-such-execution")

    with pytest.raises(zart.ConfigurationError, match="closed"):
        sync.status(execution_id)


def portals() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "zart-sync-portal"]


def test_closing_the_facade_stops_its_portal_thread(database_url: str) -> None:
    before = len(portals())
    sync = zart.DurableScheduler(database_url).sync()
    assert len(portals()) == before + 1
    with pytest.raises(zart.ExecutionNotFound):
        sync.status("nothing")

    sync.close()
    sync.close()  # again: nothing

    assert len(portals()) == before


def test_a_sync_start_takes_the_async_starts_options(database_url: str) -> None:
    with zart.DurableScheduler(database_url).sync() as sync:
        first = sync.start(
            approval,
            Greeting(name="kim"),
            tags={"tenant": "acme"},
            partition_key="acme",
            priority=3,
            singleton_key="kim-approval",
        )
        again = sync.start(approval, Greeting(name="kim"), singleton_key="kim-approval")
        record = sync.status(first)
        with pytest.raises(zart.InvalidQueue):  # refused as the async start refuses it
            sync.start(approval, Greeting(name="lee"), queue="no such queue!")
        with pytest.raises(zart.ConfigurationError, match=r"zart\.enqueue"):
            sync.start(approval, Greeting(name="lee"), session=object())  # type: ignore[call-overload]

    async def count() -> int:
        async with zart.DurableScheduler(database_url) as scheduler:
            return (await scheduler.list_executions(limit=10)).total

    assert again == first  # the held singleton key returned the first execution
    assert (record.tags, record.partition_key, record.priority) == ({"tenant": "acme"}, "acme", 3)
    assert asyncio.run(count()) == 1  # the refused starts stored nothing
