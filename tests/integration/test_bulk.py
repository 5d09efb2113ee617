"""Bulk actions by filter (``cancel_many``, ``restart_many``, ``retry_step_many``) through
Python, HTTP and the CLI on both backends: each matching execution gets the single action,
the others are untouched, a bad filter changes nothing, ``dry_run`` only counts."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

import zart
from tests.integration.runtime_helpers import FAST_WORKER, wait_for_status
from zart import DurableScheduler, ExecutionStatus
from zart.api import ApiSettings, create_app

ROOT = Path(__file__).resolve().parents[2]

#: execution ids whose "bulk-charge" step fails
declining: set[str] = set()


@zart.step("bulk-charge")
async def charge(amount: int) -> str:
    if zart.context().execution_id in declining:
        raise ValueError("card declined")
    return f"charged {amount}"


@zart.durable("bulk-order")
async def order(data: dict[str, Any]) -> str:
    charged = await charge(data["amount"])
    if data.get("wait"):
        await zart.wait_for_event("shipped", timeout=timedelta(days=1))
    return charged


async def _statuses(scheduler: DurableScheduler) -> dict[str, ExecutionStatus]:
    page = await scheduler.list_executions(limit=1000)
    return {record.execution_id: record.status for record in page.items}


async def _failed_and_waiting(scheduler: DurableScheduler) -> None:
    """acme-1, acme-2 failed (their charge declined); acme-3 and globex-1 wait; globex-2
    completed."""
    declining.update({"acme-1", "acme-2"})
    for execution_id, tenant, wait in [
        ("acme-1", "acme", False),
        ("acme-2", "acme", False),
        ("acme-3", "acme", True),
        ("globex-1", "globex", True),
        ("globex-2", "globex", False),
    ]:
        await scheduler.start(
            order, {"amount": 5, "wait": wait}, execution_id=execution_id, tags={"tenant": tenant}
        )
    for execution_id, status in [
        ("acme-1", ExecutionStatus.FAILED),
        ("acme-2", ExecutionStatus.FAILED),
        ("acme-3", ExecutionStatus.WAITING),
        ("globex-1", ExecutionStatus.WAITING),
        ("globex-2", ExecutionStatus.COMPLETED),
    ]:
        await wait_for_status(scheduler, execution_id, status)


async def test_cancel_restart_and_retry_step_by_filter(suspending: DurableScheduler) -> None:
    scheduler = suspending
    async with scheduler.run_worker(**FAST_WORKER):
        await _failed_and_waiting(scheduler)

        counted = await scheduler.cancel_many(tags={"tenant": "acme"}, dry_run=True)
        assert (counted.matched, counted.done, counted.dry_run) == (1, (), True)
        assert (await _statuses(scheduler))["acme-3"] is ExecutionStatus.WAITING

        cancelled = await scheduler.cancel_many(tags={"tenant": "acme"})
        assert (cancelled.matched, cancelled.done, cancelled.skipped) == (1, ("acme-3",), ())

        declining.discard("acme-1")
        retried = await scheduler.retry_step_many("bulk-charge", tags={"tenant": "acme"})
        assert (retried.matched, sorted(retried.done)) == (2, ["acme-1", "acme-2"])
        assert await scheduler.wait("acme-1", timeout=10) == "charged 5"
        await wait_for_status(scheduler, "acme-2", ExecutionStatus.FAILED)  # declined again

        declining.clear()
        restarted = await scheduler.restart_many(task_name="bulk-order", triggered_by="ops")
        assert restarted.done == ("acme-2",)
        assert await scheduler.wait("acme-2", timeout=10) == "charged 5"
        assert (await scheduler.status("acme-2")).run_count == 2

    statuses = await _statuses(scheduler)
    assert statuses == {
        "acme-1": ExecutionStatus.COMPLETED,
        "acme-2": ExecutionStatus.COMPLETED,
        "acme-3": ExecutionStatus.CANCELLED,
        "globex-1": ExecutionStatus.WAITING,  # another tenant: untouched throughout
        "globex-2": ExecutionStatus.COMPLETED,
    }


async def test_an_execution_that_changed_meanwhile_is_skipped_with_the_reason(
    suspending: DurableScheduler,
) -> None:
    scheduler = suspending
    async with scheduler.run_worker(**FAST_WORKER):
        await _failed_and_waiting(scheduler)
    # A failed execution whose named step did not fail: skipped, saying why.
    retried = await scheduler.retry_step_many("no-such-step", tags={"tenant": "acme"})
    assert retried.done == ()
    assert [execution_id for execution_id, _ in retried.skipped] == ["acme-1", "acme-2"]
    assert "has no step 'no-such-step'" in retried.skipped[0][1]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.cancel_many(), "bulk cancel needs a filter"),
        (lambda s: s.restart_many(), "bulk restart needs a filter"),
        (lambda s: s.restart_many(status="failed"), "bulk restart needs a filter"),
        (lambda s: s.retry_step_many("bulk-charge"), "bulk retry-step needs a filter"),
        (lambda s: s.cancel_many(status="completed"), "only unfinished executions"),
        (lambda s: s.restart_many(status="waiting", task_name="x"), "only finished executions"),
        (lambda s: s.cancel_many(status="lost"), "unknown status 'lost'"),
        (lambda s: s.cancel_many(tags={"a b": "c"}), "tag key 'a b' is not"),
        (lambda s: s.retry_step_many("", task_name="bulk-order"), "step name must not be empty"),
    ],
)
async def test_a_bad_bulk_request_changes_nothing(
    suspending: DurableScheduler, call: Any, message: str
) -> None:
    scheduler = suspending
    async with scheduler.run_worker(**FAST_WORKER):
        await _failed_and_waiting(scheduler)
    before = await _statuses(scheduler)
    with pytest.raises(zart.InvalidPayload, match=message):
        await call(scheduler)
    assert await _statuses(scheduler) == before


@pytest.fixture
async def client(suspending: DurableScheduler) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ApiSettings(), scheduler=suspending)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://zart") as client:
        yield client


async def test_bulk_actions_over_http(
    client: httpx.AsyncClient, suspending: DurableScheduler
) -> None:
    scheduler = suspending
    async with scheduler.run_worker(**FAST_WORKER):
        await _failed_and_waiting(scheduler)
        counted = await client.post(
            "/zart/admin/v1/bulk/cancel", json={"tags": {"tenant": "globex"}, "dryRun": True}
        )
        assert counted.status_code == 200, counted.text
        assert counted.json() == {
            "action": "cancel", "matched": 1, "done": [], "skipped": [], "dryRun": True
        }  # fmt: skip
        cancelled = await client.post(
            "/zart/admin/v1/bulk/cancel", json={"tags": {"tenant": "globex"}, "status": "waiting"}
        )
        assert cancelled.json()["done"] == ["globex-1"]
        declining.clear()
        restarted = await client.post(
            "/zart/admin/v1/bulk/restart",
            json={"taskName": "bulk-order", "from": "2000-01-01T00:00:00Z", "triggeredBy": "ops"},
        )
        assert sorted(restarted.json()["done"]) == ["acme-1", "acme-2"]
        assert await scheduler.wait("acme-1", timeout=10) == "charged 5"

    for body, code, text in [
        ({}, "invalid_payload", "needs a filter"),
        ({"status": "completed", "taskName": "bulk-order"}, "invalid_payload", "unfinished"),
        ({"tags": {"a b": "c"}}, "invalid_payload", "tag key 'a b'"),
        ({"from": "yesterday", "taskName": "x"}, "validation_error", "from"),
        ({"taskName": "x", "surprise": 1}, "validation_error", "surprise"),
    ]:
        refused = await client.post("/zart/admin/v1/bulk/cancel", json=body)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == code
        assert text in refused.json()["error"]["message"]
    assert (await _statuses(scheduler))["acme-3"] is ExecutionStatus.WAITING


def _zart(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zart", "bulk", *args, "--database-url", database_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


async def test_bulk_actions_through_the_cli(
    suspending: DurableScheduler, database_url: str
) -> None:
    scheduler = suspending
    async with scheduler.run_worker(**FAST_WORKER):
        await _failed_and_waiting(scheduler)

    dry = _zart(database_url, "cancel", "--tag", "tenant=acme", "--dry-run")
    assert (dry.returncode, dry.stderr) == (0, "")
    assert dry.stdout == "cancel: 1 execution(s) match (dry run, nothing changed)\n"
    # No terminal to ask on and no --yes: refused, nothing changed.
    unasked = _zart(database_url, "cancel", "--tag", "tenant=acme")
    assert unasked.returncode == 1
    assert unasked.stderr == (
        "error: cancel 1 execution(s)? Add --yes to go ahead (nothing was changed; --dry-run"
        " only counts)\n"
    )
    assert (await _statuses(scheduler))["acme-3"] is ExecutionStatus.WAITING

    done = _zart(database_url, "cancel", "--tag", "tenant=acme", "--yes")
    assert (done.returncode, done.stdout) == (
        0,
        "cancelled 1 execution(s) of 1 matched; 0 skipped\n",
    )
    retried = _zart(database_url, "retry-step", "bulk-charge", "--task", "bulk-order", "--yes",
                    "--json")  # fmt: skip
    assert retried.returncode == 0, retried.stderr
    assert sorted(json.loads(retried.stdout)["done"]) == ["acme-1", "acme-2"]

    bad = _zart(database_url, "restart", "--status", "waiting", "--task", "bulk-order", "--yes")
    assert (bad.returncode, bad.stdout) == (1, "")
    assert bad.stderr.startswith("error: only finished executions can be restarted in bulk")
    bad_tag = _zart(database_url, "cancel", "--tag", "tenant")
    assert bad_tag.stderr == "error: --tag 'tenant' is not key=value\n"
    statuses = await _statuses(scheduler)
    assert statuses["acme-3"] is ExecutionStatus.CANCELLED
    assert statuses["globex-1"] is ExecutionStatus.WAITING
