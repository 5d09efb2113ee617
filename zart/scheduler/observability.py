"""The ``/metrics`` scrape of a scheduler: this process's counters (:mod:`zart.metrics`) and
the gauges read from its database (:mod:`zart.repositories.gauges`), one statement over the
unfinished executions only, and the stored queues with their figures
(:func:`zart.repositories.queues.list_queues`, as ``zart queues list`` reads them)."""

from __future__ import annotations

from zart import metrics
from zart.models.queues import RateLimit
from zart.repositories import gauges
from zart.repositories import queues as queues_repo
from zart.repositories.queues import QueueRecord
from zart.scheduler.control_plane import DurableScheduler


async def scrape(scheduler: DurableScheduler) -> bytes:
    """The Prometheus text of ``scheduler``'s process and database. Raises
    :class:`~zart.errors.ConfigurationError` naming the extra without prometheus-client
    (before it reads the database)."""
    metrics.require("the /metrics endpoint")
    async with scheduler.store.reading() as db:
        live = await db.run(gauges.count_live_executions, now=scheduler.clock.now())
        queues = await db.run(queues_repo.list_queues, now=scheduler.clock.now())
    by_status = metrics.Gauge(
        "zart_executions",
        "Unfinished executions in the database, by task and status (scheduled, running,"
        " waiting); finished ones are counted by zart_executions_finished_total.",
        ("task_name", "status"),
        tuple(((c.task_name, c.status.value), float(c.count)) for c in live),
    )
    depth: dict[str, int] = {}
    for count in live:
        depth[count.task_name] = depth.get(count.task_name, 0) + count.ready
    queue = metrics.Gauge(
        "zart_queue_depth",
        "Executions ready for a worker now (due, unclaimed), by task.",
        ("task_name",),
        tuple(((name,), float(n)) for name, n in depth.items()),
    )
    return metrics.render((by_status, queue, *_queue_gauges(queues)))


def _queue_gauges(queues: list[QueueRecord]) -> tuple[metrics.Gauge, ...]:
    """Per stored queue: its depth, running count, limits (a limit not set has no sample),
    starts in the rate window, and whether it is paused."""

    def gauge(name: str, documentation: str, values: dict[str, float | None]) -> metrics.Gauge:
        samples = tuple(((queue,), v) for queue, v in values.items() if v is not None)
        return metrics.Gauge(name, documentation, ("queue",), samples)

    def rate(limit: RateLimit | None) -> tuple[float | None, float | None]:
        return (None, None) if limit is None else (limit.count, limit.period.total_seconds())

    return (
        gauge(
            "zart_queue_queued",
            "Executions of the queue scheduled or waiting.",
            {q.name: q.queued for q in queues},
        ),
        gauge(
            "zart_queue_running",
            "Executions of the queue running now (a live lease).",
            {q.name: q.running for q in queues},
        ),
        gauge(
            "zart_queue_concurrency_limit",
            "The queue's concurrency cap (no sample: none).",
            {q.name: q.limits.concurrency for q in queues},
        ),
        gauge(
            "zart_queue_partition_concurrency_limit",
            "The queue's cap per partition key (no sample: none).",
            {q.name: q.limits.partition_concurrency for q in queues},
        ),
        gauge(
            "zart_queue_rate_limit",
            "The starts the queue's rate limit allows per period (no sample: none).",
            {q.name: rate(q.limits.rate_limit)[0] for q in queues},
        ),
        gauge(
            "zart_queue_rate_limit_period_seconds",
            "The period of the queue's rate limit, in seconds (no sample: none).",
            {q.name: rate(q.limits.rate_limit)[1] for q in queues},
        ),
        gauge(
            "zart_queue_partition_rate_limit",
            "The starts each partition key may make per period (no sample: none).",
            {q.name: rate(q.limits.partition_rate_limit)[0] for q in queues},
        ),
        gauge(
            "zart_queue_partition_rate_limit_period_seconds",
            "The period of the queue's rate limit per partition key (no sample: none).",
            {q.name: rate(q.limits.partition_rate_limit)[1] for q in queues},
        ),
        gauge(
            "zart_queue_recent_starts",
            "Starts of the queue within its rate limit's current window (0 without one).",
            {q.name: q.recent_starts for q in queues},
        ),
        gauge(
            "zart_queue_paused",
            "1 if the queue is paused (nothing more is claimed from it), else 0.",
            {q.name: float(q.paused) for q in queues},
        ),
    )
