"""Prometheus metrics (acceptance 1 of #16): after a mixed run (completed, failed, retried,
waiting, woken by a timer) a scrape of ``GET /metrics`` counts what happened, on both
backends, and the number of series does not grow with the number of executions.

The counters are per process, so each check reads how much a counter grew during the test
(both backend variants run in one process)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import zart
from tests.integration.runtime_helpers import FAST_WORKER
from zart import DurableScheduler
from zart.api import ApiSettings, create_app

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

#: execution id -> attempts of its flaky step so far
flaky_attempts: dict[str, int] = {}


@zart.step("metrics-add")
async def add(a: int, b: int) -> int:
    return a + b


@zart.step("metrics-report-{index}")
async def report(index: int) -> int:
    return index


@zart.step("metrics-explode")
async def explode() -> None:
    raise ValueError("boom")


@zart.step("metrics-flaky", retry="fixed(2, 10ms)")
async def flaky() -> str:
    execution_id = zart.context().execution_id
    flaky_attempts[execution_id] = flaky_attempts.get(execution_id, 0) + 1
    if flaky_attempts[execution_id] == 1:
        raise RuntimeError("first try fails")
    return "ok"


@zart.durable("metrics-ok")
async def ok(data: dict[str, Any]) -> int:
    total = await add(1, 2)
    for index in range(int(data.get("reports", 0))):
        total += await report(index)  # one filled name per call, one series for them all
    return total


@zart.durable("metrics-fail")
async def fail() -> None:
    await explode()


@zart.durable("metrics-retry")
async def retry() -> str:
    return await flaky()


@zart.durable("metrics-wait")
async def wait() -> Any:
    return await zart.wait_for_event("go", timeout=timedelta(hours=1))


@zart.durable("metrics-sleep")
async def sleep() -> str:
    await zart.sleep("nap", 0.05)
    return "rested"


TASKS = ("metrics-ok", "metrics-fail", "metrics-retry", "metrics-wait", "metrics-sleep")


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def ours(samples: Mapping[tuple[str, tuple[tuple[str, str], ...]], float]) -> set[Any]:
    """The series of this test's tasks."""
    return {key for key in samples if dict(key[1]).get("task_name") in TASKS}


async def _scrape(client: httpx.AsyncClient) -> Samples:
    answer = await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return parse(answer.text)


async def _until_waiting(scheduler: DurableScheduler, execution_id: str) -> None:
    for _ in range(500):
        if (await scheduler.status(execution_id)).status is zart.ExecutionStatus.WAITING:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{execution_id} never waited")


async def test_a_scrape_counts_a_mixed_run(suspending: DurableScheduler) -> None:
    scheduler = suspending
    app = create_app(ApiSettings(api_token="s3cret"), scheduler=scheduler)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://zart") as client:
        assert (await client.get("/metrics")).status_code == 401  # the token rule of serve
        before = await _scrape(client)
        # Started before the worker runs: each one is claimed (a claim lag to measure).
        ids = {
            "ok": await scheduler.start(ok, {"reports": 2}),
            "fail": await scheduler.start(fail),
            "retry": await scheduler.start(retry),
            "wait": await scheduler.start(wait),
            "sleep": await scheduler.start(sleep),
        }
        async with scheduler.run_worker(**FAST_WORKER):
            assert await scheduler.wait(ids["ok"], timeout=20) == 4
            with pytest.raises(zart.ExecutionFailed, match="boom"):
                await scheduler.wait(ids["fail"], timeout=20)
            assert await scheduler.wait(ids["retry"], timeout=20) == "ok"
            assert await scheduler.wait(ids["sleep"], timeout=20) == "rested"
            await _until_waiting(scheduler, ids["wait"])
            after = await _scrape(client)

            def started(task: str) -> float:
                return grew(before, after, "zart_executions_started_total", task_name=task)

            def finished(task: str, status: str) -> float:
                return grew(
                    before,
                    after,
                    "zart_executions_finished_total",
                    task_name=task,
                    status=status,
                )

            def attempts(task: str, step: str, outcome: str) -> float:
                return grew(
                    before,
                    after,
                    "zart_step_attempts_total",
                    task_name=task,
                    step_name=step,
                    outcome=outcome,
                )

            assert [started(task) for task in TASKS] == [1, 1, 1, 1, 1]
            assert finished("metrics-ok", "completed") == 1
            assert finished("metrics-fail", "failed") == 1
            assert finished("metrics-fail", "completed") == 0
            assert finished("metrics-retry", "completed") == 1
            assert finished("metrics-sleep", "completed") == 1
            assert finished("metrics-wait", "completed") == 0
            assert attempts("metrics-ok", "metrics-add", "succeeded") == 1
            # The template's name, not metrics-report-0 and metrics-report-1.
            assert attempts("metrics-ok", "metrics-report-{index}", "succeeded") == 2
            assert attempts("metrics-fail", "metrics-explode", "failed") == 1
            assert attempts("metrics-retry", "metrics-flaky", "retried") == 1
            assert attempts("metrics-retry", "metrics-flaky", "succeeded") == 1
            duration = "zart_step_duration_seconds_count"
            assert (
                grew(before, after, duration, task_name="metrics-retry", step_name="metrics-flaky")
                == 2
            )
            assert (
                grew(before, after, "zart_executions_suspended_total", task_name="metrics-sleep")
                == 1
            )
            assert (
                grew(before, after, "zart_executions_suspended_total", task_name="metrics-wait")
                == 1
            )
            # Each start was claimed once; the sleeper was woken once by its timer.
            for task in TASKS:
                assert grew(before, after, "zart_claim_lag_seconds_count", task_name=task) == 1
            assert (
                grew(before, after, "zart_wakeup_lag_seconds_count", task_name="metrics-sleep") == 1
            )
            assert grew(before, after, "zart_takeovers_total", task_name="metrics-ok") == 0
            # From the database: the waiting one, nothing ready.
            assert value(after, "zart_executions", task_name="metrics-wait", status="waiting") == 1
            assert value(after, "zart_queue_depth", task_name="metrics-wait") == 0
            assert value(after, "zart_worker_slots") >= FAST_WORKER["concurrency"]

            # Label cardinality: more executions (and more filled step names) add no series.
            series = ours(after)
            more = [await scheduler.start(ok, {"reports": 5}) for _ in range(4)]
            for execution_id in more:
                assert await scheduler.wait(execution_id, timeout=20) == 13
            again = await _scrape(client)
            assert ours(again) == series
            assert (
                grew(
                    after,
                    again,
                    "zart_executions_finished_total",
                    task_name="metrics-ok",
                    status="completed",
                )
                == 4
            )
            assert not any(execution_id in str(key) for key in again for execution_id in more)


async def test_a_scrape_shows_each_queue_its_figures_and_limits(
    scheduler: DurableScheduler,
) -> None:
    app = create_app(ApiSettings(api_token="s3cret"), scheduler=scheduler)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://zart") as client:
        await scheduler.set_queue("metrics-q", concurrency=2, rate_limit="10/1m")
        await scheduler.set_queue(
            "metrics-open", partition_concurrency=1, partition_rate_limit="5/1s"
        )
        await scheduler.pause_queue("metrics-q")
        for _ in range(3):
            await scheduler.start(ok, {"reports": 1}, queue="metrics-q")
        samples = await _scrape(client)
    assert value(samples, "zart_queue_queued", queue="metrics-q") == 3
    assert value(samples, "zart_queue_running", queue="metrics-q") == 0
    assert value(samples, "zart_queue_concurrency_limit", queue="metrics-q") == 2
    assert value(samples, "zart_queue_rate_limit", queue="metrics-q") == 10
    assert value(samples, "zart_queue_rate_limit_period_seconds", queue="metrics-q") == 60
    assert value(samples, "zart_queue_recent_starts", queue="metrics-q") == 0
    assert value(samples, "zart_queue_paused", queue="metrics-q") == 1
    # A limit not set has no sample; the other queue has its own.
    assert ("zart_queue_concurrency_limit", (("queue", "metrics-open"),)) not in samples
    assert value(samples, "zart_queue_partition_concurrency_limit", queue="metrics-open") == 1
    assert value(samples, "zart_queue_partition_rate_limit", queue="metrics-open") == 5
    seconds = "zart_queue_partition_rate_limit_period_seconds"
    assert value(samples, seconds, queue="metrics-open") == 1
    assert ("zart_queue_partition_rate_limit", (("queue", "metrics-q"),)) not in samples
    assert value(samples, "zart_queue_paused", queue="metrics-open") == 0
