"""Prometheus metrics of this process (the optional ``metrics`` extra: ``prometheus-client``).

Every metric is prefixed ``zart_``. The counters and histograms here are *per process*: a
worker counts the steps, runs and claims it made, an application or ``zart serve`` the
starts it made. ``zart serve``'s ``GET /metrics`` adds the gauges read from the database
(executions by status, queue depth: :mod:`zart.scheduler.observability`).

Labels stay bounded: task names and step *names as declared* (``process-report-{index}``,
the template, not the filled name; a call-site ``.named()`` override counts under its step's
declared name), statuses and outcomes, never an execution id.

The counters and histograms are counted as plain numbers (a dict update under a lock: a
resume used to pay four ``labels()`` lookups beside its locked increments) and read
by Zart's registry when it is scraped, through a collector; the text is prometheus-client's
own for the same counts (``tests/unit/test_metrics_exposition.py``), less the ``_created``
samples. The slot gauges are read at scrape time too.

Without ``prometheus-client`` installed every function here is a no-op costing one global
lookup, and :func:`require` (what ``/metrics`` and ``--metrics-port`` call) raises a
:class:`~zart.errors.ConfigurationError` naming the extra. The instruments live in a registry
of Zart's own (:func:`registry`), so they never collide with the application's metrics; an
application that serves its own ``/metrics`` can expose it beside its default registry.
"""

from __future__ import annotations

import bisect
import importlib.util
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from zart.errors import ConfigurationError

#: The pip extra that brings prometheus-client in.
EXTRA = "zart-durable[metrics]"

#: Buckets (seconds) of the step duration histogram: a checkpointed step is milliseconds to
#: minutes.
STEP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
#: Buckets (seconds) of the claim and wake-up lag histograms: NOTIFY makes most sub-10 ms, the
#: poll interval bounds the rest, a backlog makes the tail.
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

#: Step attempt outcomes (the ``outcome`` label of ``zart_step_attempts_total``).
STEP_OUTCOMES = ("succeeded", "retried", "failed", "timed_out", "crashed")


@dataclass(frozen=True)
class _Instruments:
    registry: Any
    executions_started: Any
    executions_finished: Any
    executions_suspended: Any
    step_attempts: Any
    step_duration: Any
    claim_lag: Any
    wakeup_lag: Any
    lease_losses: Any
    takeovers: Any
    crash_loops: Any
    slots_in_use: Any
    slots: Any


class _Counter:
    """A counter by label values, counted as plain numbers in this process (each count a
    dict update under one lock: a synchronous facade's thread may count beside the event
    loop's) and read by the registry when scraped."""

    __slots__ = ("_lock", "documentation", "labels", "name", "values")

    def __init__(self, name: str, documentation: str, labels: Iterable[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = list(labels)
        self.values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, key: tuple[str, ...], amount: float = 1.0) -> None:
        with self._lock:
            self.values[key] = self.values.get(key, 0.0) + amount

    def family(self) -> Any:
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        with self._lock:  # a copy: counted on another thread
            kept = list(self.values.items())
        for key, value in kept:
            family.add_metric(list(key), value)
        return family


class _Histogram:
    """A histogram by label values, kept like :class:`_Counter`: per key, the count of each
    bucket (the last one ``+Inf``) and the sum."""

    __slots__ = ("_lock", "bounds", "documentation", "labels", "name", "values")

    def __init__(
        self, name: str, documentation: str, labels: Iterable[str], buckets: Iterable[float]
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = list(labels)
        self.bounds = tuple(float(b) for b in buckets)
        self.values: dict[tuple[str, ...], list[float]] = {}
        self._lock = threading.Lock()

    def observe(self, key: tuple[str, ...], value: float) -> None:
        index = bisect.bisect_left(self.bounds, value)  # le: the first bound >= value
        with self._lock:
            counts = self.values.get(key)
            if counts is None:
                counts = self.values[key] = [0.0] * (len(self.bounds) + 2)
            counts[index] += 1
            counts[-1] += value

    def family(self) -> Any:
        from prometheus_client.core import HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        with self._lock:  # a consistent copy: counted on another thread
            kept = [(key, list(counts)) for key, counts in self.values.items()]
        for key, counts in kept:
            buckets, total = [], 0.0
            for bound, count in zip((*self.bounds, float("inf")), counts, strict=False):
                total += count
                buckets.append((floatToGoString(bound), total))  # type: ignore[no-untyped-call]
            family.add_metric(list(key), buckets, counts[-1])
        return family


def _build() -> _Instruments | None:
    if importlib.util.find_spec("prometheus_client") is None:
        return None
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry(auto_describe=True)
    kept: list[_Counter | _Histogram] = []

    def counter(name: str, doc: str, labels: Iterable[str]) -> _Counter:
        kept.append(found := _Counter(name, doc, labels))
        return found

    def histogram(name: str, doc: str, labels: Iterable[str], buckets: Iterable[float]) -> Any:
        kept.append(found := _Histogram(name, doc, labels, buckets))
        return found

    class _Counted:
        """What the registry reads at a scrape: every counter and histogram above."""

        def collect(self) -> Iterable[Any]:
            return [instrument.family() for instrument in kept]

    instruments = _Instruments(
        registry=registry,
        executions_started=counter(
            "zart_executions_started", "Executions started by this process.", ["task_name"]
        ),
        executions_finished=counter(
            "zart_executions_finished",
            "Runs this process ended, by how they ended (completed, failed, cancelled).",
            ["task_name", "status"],
        ),
        executions_suspended=counter(
            "zart_executions_suspended",
            "Runs this worker suspended to wait durably (a sleep, an event, a back-off).",
            ["task_name"],
        ),
        step_attempts=counter(
            "zart_step_attempts",
            "Step attempts this worker ran, by outcome (succeeded, retried, failed,"
            " timed_out, crashed).",
            ["task_name", "step_name", "outcome"],
        ),
        step_duration=histogram(
            "zart_step_duration_seconds",
            "How long step attempts ran (the step's own code, not its checkpoint).",
            ["task_name", "step_name"],
            STEP_BUCKETS,
        ),
        claim_lag=histogram(
            "zart_claim_lag_seconds",
            "From an execution becoming ready (its start) to a worker claiming it.",
            ["task_name"],
            LAG_BUCKETS,
        ),
        wakeup_lag=histogram(
            "zart_wakeup_lag_seconds",
            "From a waiting execution becoming due (its timer) or delivered to (its event) to"
            " a worker resuming it.",
            ["task_name"],
            LAG_BUCKETS,
        ),
        lease_losses=counter(
            "zart_lease_losses",
            "Runs this worker stopped because another worker took their lease.",
            ["task_name"],
        ),
        takeovers=counter(
            "zart_takeovers",
            "Executions this worker took over after their lease expired (their worker died).",
            ["task_name"],
        ),
        crash_loops=counter(
            "zart_crash_loops",
            "Executions failed as crash loops (max_claims claims in a row without a report).",
            ["task_name"],
        ),
        slots_in_use=_read_at_scrape(
            Gauge(
                "zart_worker_slots_in_use",
                "Executions running on this process's workers now.",
                registry=registry,
            ),
            "in_use",
        ),
        slots=_read_at_scrape(
            Gauge(
                "zart_worker_slots",
                "Concurrency of this process's running workers.",
                registry=registry,
            ),
            "total",
        ),
    )
    # Registered once they exist: with auto_describe the registry reads their names now.
    registry.register(_Counted())
    return instruments


#: The slot gauges' values: plain integers changed by :func:`slots` (a run begins or ends:
#: no lock, no metric call), read when the gauges are scraped.
_slots = {"in_use": 0, "total": 0}


def _read_at_scrape(gauge: Any, key: str) -> Any:
    gauge.set_function(lambda: _slots[key])
    return gauge


_instruments: _Instruments | None = _build()


def available() -> bool:
    """Whether ``prometheus-client`` is installed (the metrics are being counted)."""
    return _instruments is not None


def require(what: str) -> _Instruments:
    """The instruments, or a clear error naming the extra when ``prometheus-client`` is not
    installed. ``what``: the feature asked for, for the message."""
    if _instruments is None:
        raise ConfigurationError(
            f"{what} needs prometheus-client: pip install '{EXTRA}' (or prometheus-client)"
        )
    return _instruments


def registry() -> Any:
    """Zart's ``prometheus_client.CollectorRegistry`` (see the module docs)."""
    return require("zart.metrics.registry()").registry


# -- what the runtime and the worker count (no-ops without prometheus-client) ------------


def execution_started(task_name: str) -> None:
    if _instruments is not None:
        _instruments.executions_started.inc((task_name,))


def execution_finished(task_name: str, status: str) -> None:
    if _instruments is not None:
        _instruments.executions_finished.inc((task_name, status))


def execution_suspended(task_name: str) -> None:
    if _instruments is not None:
        _instruments.executions_suspended.inc((task_name,))


def step_attempt(task_name: str, step_name: str, outcome: str, seconds: float | None) -> None:
    """One attempt of step ``step_name`` (its declared name) ended with ``outcome``;
    ``seconds``: how long its code ran (``None``: it did not run here, e.g. ``crashed``)."""
    if _instruments is not None:
        _instruments.step_attempts.inc((task_name, step_name, outcome))
        if seconds is not None:
            _instruments.step_duration.observe((task_name, step_name), seconds)


def claimed(task_name: str, previous_status: str, lag: float | None) -> None:
    """A claim took an execution that was ``previous_status`` (``scheduled``: a start;
    ``waiting``: a wake-up; ``running``: a takeover), ``lag`` seconds after it became
    claimable."""
    if _instruments is None:
        return
    if previous_status == "running":
        _instruments.takeovers.inc((task_name,))
    elif lag is not None:
        woken = previous_status == "waiting"
        histogram = _instruments.wakeup_lag if woken else _instruments.claim_lag
        histogram.observe((task_name,), max(lag, 0.0))


def lease_lost(task_name: str) -> None:
    if _instruments is not None:
        _instruments.lease_losses.inc((task_name,))


def crash_loop(task_name: str) -> None:
    if _instruments is not None:
        _instruments.crash_loops.inc((task_name,))


def slots(*, in_use: int = 0, total: int = 0) -> None:
    """Change the worker slot gauges by ``in_use`` and ``total`` (a run begins or ends, a
    worker starts or stops)."""
    _slots["in_use"] += in_use
    _slots["total"] += total


# -- exposition --------------------------------------------------------------------------

#: The Content-Type of the Prometheus text format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Gauge:
    """A gauge read at scrape time (from the database): its samples by label values."""

    name: str
    documentation: str
    labels: tuple[str, ...]
    samples: tuple[tuple[tuple[str, ...], float], ...]


def render(gauges: Iterable[Gauge] = ()) -> bytes:
    """This process's metrics in the Prometheus text format, followed by ``gauges``."""
    instruments = require("the /metrics endpoint")
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily

    text: bytes = generate_latest(instruments.registry)
    families = []
    for gauge in gauges:
        family = GaugeMetricFamily(gauge.name, gauge.documentation, labels=list(gauge.labels))
        for values, value in gauge.samples:
            family.add_metric(list(values), value)
        families.append(family)
    if families:

        class _Read:
            def collect(self) -> Iterable[Any]:
                return families

        extra = CollectorRegistry(auto_describe=False)
        extra.register(_Read())
        text += generate_latest(extra)
    return text


def serve(port: int, host: str) -> Callable[[], None]:
    """Serve this process's metrics at ``http://host:port/metrics`` (a thread of
    ``prometheus_client``); returns what stops it. ``zart worker --metrics-port``."""
    instruments = require("--metrics-port")
    from prometheus_client import start_http_server

    server, thread = start_http_server(port, addr=host, registry=instruments.registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
