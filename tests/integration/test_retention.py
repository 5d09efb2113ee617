"""Retention: ``scheduler.prune`` (``zart prune``, ``POST /zart/admin/v1/prune``) and the
worker's background pruning (``@zart.durable(retention=)``, the worker's ``retention``) delete
exactly the finished executions old enough, with all their rows, on both backends, while a
worker keeps claiming; two pruners at once delete each row once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text, update

import zart
from tests.integration.runtime_helpers import FAST_WORKER, wait_for_status
from zart import DurableScheduler, ExecutionStatus
from zart.api import ApiSettings, create_app
from zart.models import ExecutionRow, table_of
from zart.worker import WorkerSettings

EXECUTIONS = table_of(ExecutionRow)

ROOT = Path(__file__).resolve().parents[2]
CHILD_TABLES = ("zart_runs", "zart_steps", "zart_step_attempts", "zart_timers", "zart_events")


@zart.step("retention-work", retry="fixed(1, 1ms)")
async def work(n: int) -> int:
    if zart.context().current_attempt == 0 and n % 2:
        raise ConnectionError("flaky")  # an attempt row more to delete
    return n


@zart.durable("retention-job")
async def job(data: dict[str, Any]) -> int:
    await zart.sleep("pause", timedelta(milliseconds=1))  # a timer row
    if data.get("fail"):
        raise ValueError("no")
    if data.get("wait"):
        await zart.wait_for_event("go")
    return await work(data["n"])


@zart.durable("retention-short", retention="1h")
async def short_lived(data: dict[str, Any]) -> str:
    return "done"


async def _rows(scheduler: DurableScheduler, execution_ids: list[str]) -> dict[str, int]:
    """How many rows of each table belong to ``execution_ids``."""
    counts = {}
    async with scheduler.engine.connect() as conn:
        for table in ("zart_executions", *CHILD_TABLES):
            query = f"SELECT execution_id FROM {table}"
            if table == "zart_step_attempts":  # an attempt belongs to its step
                query = (
                    "SELECT s.execution_id FROM zart_step_attempts a"
                    " JOIN zart_steps s ON a.step_id = s.step_id"
                )
            found = await conn.execute(text(query))
            counts[table] = sum(row[0] in execution_ids for row in found)
    return counts


async def _age(
    scheduler: DurableScheduler,
    execution_ids: list[str] | None = None,
    *,
    ago: timedelta,
    task_name: str | None = None,
) -> None:
    """Make ``execution_ids`` (or every execution of ``task_name``) look finished ``ago``."""
    column = EXECUTIONS.c.execution_id if task_name is None else EXECUTIONS.c.task_name
    wanted = execution_ids if task_name is None else [task_name]
    async with scheduler.engine.begin() as conn:
        await conn.execute(
            update(EXECUTIONS)
            .where(column.in_(wanted))
            .values(completed_at=scheduler.clock.now() - ago)
        )


async def _finished(scheduler: DurableScheduler, count: int, prefix: str) -> list[str]:
    ids = []
    for n in range(count):
        execution_id = f"{prefix}-{n}"
        data = {"n": n, "fail": n % 3 == 0, "wait": n % 4 == 1 and n % 3 != 0}
        await scheduler.start(job, data, execution_id=execution_id)
        if data["wait"]:  # an event row more
            await scheduler.offer_event(execution_id, "go", {"n": n})
        ids.append(execution_id)
    for execution_id in ids:
        record = await scheduler.wait_finished(execution_id, timeout=20)
        assert record.is_terminal
    return ids


async def test_prune_deletes_exactly_the_old_finished_executions_while_a_worker_claims(
    suspending: DurableScheduler,
) -> None:
    scheduler = suspending
    async with scheduler.run_worker(**FAST_WORKER):
        old = await _finished(scheduler, 12, "old")
        recent = await _finished(scheduler, 4, "recent")
        waiting = await scheduler.start(job, {"n": 1, "wait": True}, execution_id="waiting")
        await wait_for_status(scheduler, waiting, ExecutionStatus.WAITING)
        await _age(scheduler, old, ago=timedelta(days=40))
        await _age(scheduler, recent, ago=timedelta(days=3))
        before = await _rows(scheduler, old)
        assert all(before[table] for table in before), before  # every kind of row is there

        counted = await scheduler.prune("30d", dry_run=True)
        assert (counted.matched, counted.deleted, counted.dry_run) == (12, 0, True)
        # Pruning while the worker claims new work.
        more = [await scheduler.start(job, {"n": n}, execution_id=f"during-{n}") for n in range(10)]
        pruned = await scheduler.prune("30d")
        for execution_id in more:
            await scheduler.wait_finished(execution_id, timeout=20)

    assert (pruned.matched, pruned.deleted) == (12, 12)
    assert await _rows(scheduler, old) == dict.fromkeys(before, 0)
    kept = await _rows(scheduler, [*recent, waiting, *more])
    assert kept["zart_executions"] == 4 + 1 + 10
    assert kept["zart_runs"] == 15
    failed_only = await scheduler.prune("1d", status="failed")
    assert failed_only.deleted == sum(1 for n in range(4) if n % 3 == 0)
    assert (await scheduler.status(waiting)).status is ExecutionStatus.WAITING


async def test_two_pruners_at_once_delete_each_row_once(
    suspending: DurableScheduler, database_url: str
) -> None:
    scheduler = suspending
    async with scheduler.run_worker(**FAST_WORKER):
        old = await _finished(scheduler, 30, "twice")
    await _age(scheduler, old, ago=timedelta(days=40))
    async with DurableScheduler(database_url) as other:
        first, second = await asyncio.gather(scheduler.prune("30d"), other.prune("30d"))
    assert first.deleted + second.deleted == 30
    assert (await _rows(scheduler, old))["zart_executions"] == 0


async def test_workers_prune_in_the_background_by_handler_and_by_default(
    suspending: DurableScheduler,
) -> None:
    scheduler = suspending
    async with scheduler.run_worker(**FAST_WORKER):
        short = [await scheduler.start(short_lived, {}) for _ in range(3)]
        jobs = await _finished(scheduler, 3, "default")
        for execution_id in short:
            await scheduler.wait_finished(execution_id, timeout=20)
    # Two hours ago: past the handler's own 1 h, not past a day.
    await _age(scheduler, ago=timedelta(hours=2), task_name="retention-short")
    await _age(scheduler, ago=timedelta(hours=2), task_name="retention-job")

    # No worker retention: only the handler's own applies; the jobs (2 h old) stay.
    async with scheduler.run_worker(**FAST_WORKER, prune_interval=0.05):
        for _ in range(500):
            if (await _rows(scheduler, short))["zart_executions"] == 0:
                break
            await asyncio.sleep(0.01)
    assert (await _rows(scheduler, short))["zart_executions"] == 0
    assert (await _rows(scheduler, jobs))["zart_executions"] == 3

    # A worker retention of 1 day keeps them too; 1 hour deletes them.
    async with scheduler.run_worker(**FAST_WORKER, prune_interval=0.05, retention="1d"):
        await asyncio.sleep(0.2)
        assert (await _rows(scheduler, jobs))["zart_executions"] == 3
    async with scheduler.run_worker(**FAST_WORKER, prune_interval=0.05, retention="1h"):
        for _ in range(500):
            if (await _rows(scheduler, jobs))["zart_executions"] == 0:
                break
            await asyncio.sleep(0.01)
    assert await _rows(scheduler, jobs) == dict.fromkeys(("zart_executions", *CHILD_TABLES), 0)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda s: s.prune("soon"), zart.InvalidPayload, "invalid older_than 'soon'"),
        (lambda s: s.prune(0), zart.InvalidPayload, "older_than must be positive"),
        (lambda s: s.prune("1d", status="running"), zart.InvalidPayload, "only finished"),
        (lambda s: s.prune("1d", status="lost"), zart.InvalidPayload, "unknown status"),
    ],
)
async def test_a_bad_prune_deletes_nothing(
    scheduler: DurableScheduler, call: Any, error: type[Exception], message: str
) -> None:
    await scheduler.start(job, {"n": 1}, execution_id="kept")
    with pytest.raises(error, match=message):
        await call(scheduler)
    assert (await scheduler.list_executions()).total == 1


def test_a_bad_retention_is_refused_where_it_is_declared() -> None:
    async def handler() -> None: ...

    with pytest.raises(zart.ConfigurationError, match="invalid retention 'forever'"):
        zart.durable("retention-bad", retention="forever")(handler)
    with pytest.raises(zart.ConfigurationError, match="retention must be positive"):
        WorkerSettings(retention=0)


async def test_prune_over_http_and_the_cli(suspending: DurableScheduler, database_url: str) -> None:
    scheduler = suspending
    async with scheduler.run_worker(**FAST_WORKER):
        old = await _finished(scheduler, 4, "edge")
    await _age(scheduler, old[:2], ago=timedelta(days=40))

    transport = httpx.ASGITransport(app=create_app(ApiSettings(), scheduler=scheduler))
    async with httpx.AsyncClient(transport=transport, base_url="http://zart") as client:
        counted = await client.post("/zart/admin/v1/prune", json={"dryRun": True})
        assert counted.json() == {"matched": 2, "deleted": 0, "dryRun": True}
        refused = await client.post("/zart/admin/v1/prune", json={"olderThan": "soon"})
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "invalid_payload"

    def zart_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "zart", "prune", *args, "--database-url", database_url],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    bad = zart_cli("--older-than", "soon")
    assert (bad.returncode, bad.stdout) == (1, "")
    assert bad.stderr.startswith("error: invalid older_than 'soon'")
    done = zart_cli("--older-than", "30d", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"matched": 2, "deleted": 2, "dryRun": False}
    assert (await _rows(scheduler, old))["zart_executions"] == 2
