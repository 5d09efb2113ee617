"""``zart worker --metrics-port``: a real worker process serves its own Prometheus metrics,
counting what it ran; a port it cannot bind is a clear error before it starts."""

from __future__ import annotations

import signal
import socket

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import zart
from tests.acceptance.cli_handlers import greet
from tests.acceptance.test_cli_worker_logs import worker


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.postgresql_only
async def test_the_worker_serves_its_own_metrics(database_url: str) -> None:
    port = _free_port()
    async with zart.DurableScheduler(database_url) as scheduler:
        execution_id = await scheduler.start(greet, {"name": "ada"}, execution_id="measured")
        process = worker(database_url, env={"ZART_METRICS_PORT": str(port)})
        try:
            assert await scheduler.wait(execution_id, timeout=60) == {"greeting": "HELLO ADA"}
            async with httpx.AsyncClient() as client:
                answer = await client.get(f"http://127.0.0.1:{port}/metrics", timeout=30)
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert f"metrics on http://127.0.0.1:{port}/metrics" in stderr
    assert answer.status_code == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }
    step = (("outcome", "succeeded"), ("step_name", "shout"), ("task_name", "greet"))
    assert samples[("zart_step_attempts_total", step)] == 1
    finished = (("status", "completed"), ("task_name", "greet"))
    assert samples[("zart_executions_finished_total", finished)] == 1
    assert samples[("zart_claim_lag_seconds_count", (("task_name", "greet"),))] == 1
    assert samples[("zart_worker_slots", ())] == 64
    assert not any("measured" in str(key) for key in samples)


def test_a_port_in_use_is_one_error_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = worker("sqlite+aiosqlite:///unused.db", "--metrics-port", str(port))
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert stderr.strip().startswith(f"error: --metrics-port {port}: cannot serve metrics on")
