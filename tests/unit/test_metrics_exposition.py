"""Zart counts its metrics as plain numbers and hands them to the registry at a scrape
(``zart.metrics``): the text a scrape gives must be prometheus-client's own for the same
counts, bucket edges included (a value on a bound is in that bound's bucket)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from zart import metrics


def _samples(text: bytes, prefixes: tuple[str, ...]) -> list[str]:
    return sorted(
        line
        for line in text.decode().splitlines()
        if line.startswith(prefixes) and "_created" not in line  # not kept: no start times
    )


def test_a_scrape_reads_what_prometheus_client_would_have_counted() -> None:
    reference = CollectorRegistry()
    lag = Histogram(
        "zart_wakeup_lag_seconds",
        "d",
        ["task_name"],
        registry=reference,
        buckets=metrics.LAG_BUCKETS,
    )
    attempts = Counter(
        "zart_step_attempts", "d", ["task_name", "step_name", "outcome"], registry=reference
    )
    task = "exposition-task"  # a task of its own: the process's counts are shared
    for value in (0.0005, 0.001, 0.0031, 0.01, 2.5, 100.0):  # 0.001, 0.01, 2.5: on bounds
        lag.labels(task).observe(value)
        metrics.claimed(task, "waiting", value)
    for outcome in ("succeeded", "succeeded", "retried"):
        attempts.labels(task, "exposition-step", outcome).inc()
        metrics.step_attempt(task, "exposition-step", outcome, None)
    ours = [
        line
        for line in _samples(metrics.render(), ("zart_wakeup_lag", "zart_step_attempts"))
        if task in line
    ]
    expected = _samples(generate_latest(reference), ("zart_wakeup_lag", "zart_step_attempts"))
    assert ours == expected
    bucket = f'zart_wakeup_lag_seconds_bucket{{le="0.001",task_name="{task}"}} 2.0'
    assert bucket in ours, ours  # 0.0005, and 0.001 on the bound
