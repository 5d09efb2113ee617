"""The ``/metrics`` scrape of a scheduler: this process's counters (:mod:`zart.metrics`) and
the gauges read from its database (:mod:`zart.repositories.gauges`), one statement over the
unfinished executions only."""

from __future__ import annotations

from zart import metrics
from zart.repositories import gauges
from zart.scheduler.control_plane import DurableScheduler


async def scrape(scheduler: DurableScheduler) -> bytes:
    """The Prometheus text of ``scheduler``'s process and database. Raises
    :class:`~zart.errors.ConfigurationError` naming the extra without prometheus-client
    (before it reads the database)."""
    metrics.require("the /metrics endpoint")
    async with scheduler.store.reading() as db:
        live = await db.run(gauges.count_live_executions, now=scheduler.clock.now())
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
    return metrics.render((by_status, queue))
