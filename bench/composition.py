"""Composition figures (issue 19, DESIGN §7 batch 2: "a child's start-to-result and a
message's delivery resume within 2x the event wake-up (p50, PostgreSQL)"), beside the event
wake-up they are judged against, all measured in one run on one server:

- *event*: ``bench.wake``'s event wake-up (an idle in-process worker; the event offered by a
  second scheduler without a worker, so the path is NOTIFY -> listener -> claim).
- *message*: the same with ``await zart.recv("go")`` and ``scheduler.send`` from the second
  scheduler. Latency = the step after the ``recv`` (its ``time.time()``) - just before the
  send.
- *child*: a parent captures ``time.time()``, then ``await zart.run_child(child)`` (the child
  runs one step) and runs a step returning ``time.time()``: start-to-result = the difference
  (the child's start, claim, run and finish, the parent's wake-up, claim and replay).
- *fan-out*: one parent starts ``N`` children (``zart.start_child`` in a loop) and gathers
  their results; children per second = N / (the parent's end - its start).

    python -m bench.composition [--repetitions 40] [--fan-out 1000] [--url URL]

Without ``--url`` it starts a throwaway PostgreSQL with production durability
(``tests/pg_server.py``), as ``bench.run`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from typing import Any

import zart
from bench.wake import (
    IDLE_POLL_INTERVAL,
    WAIT_TIMEOUT,
    _event_latencies,
    _until_status,
    percentiles,
)

#: What ``make bench`` runs: the wake-ups measured (of each kind, interleaved: one event, one
#: message, one child, and again), and the children of the fan-out.
REPETITIONS = 40
FAN_OUT = 1000


@zart.step("resumed")
async def resumed_at() -> float:
    return time.time()


@zart.step("child-work")
async def child_work(n: int) -> int:
    return n


@zart.durable("bench-composition-child")
async def bench_child(n: int) -> int:
    return await child_work(n)


@zart.durable("bench-composition-parent")
async def bench_parent(data: dict[str, Any]) -> list[float]:
    started = await zart.capture("started", time.time)
    await zart.run_child(bench_child, 1)
    return [started, await resumed_at()]


@zart.durable("bench-composition-inbox")
async def bench_inbox(data: dict[str, Any]) -> float:
    await zart.recv("go")
    return await resumed_at()


@zart.durable("bench-composition-fan-out")
async def bench_fan_out(data: dict[str, Any]) -> int:
    handles = [await zart.start_child(bench_child, n) for n in range(data["children"])]
    return sum(await asyncio.gather(*(handle.result() for handle in handles)))


async def _message_latencies(
    scheduler: zart.DurableScheduler, sender: zart.DurableScheduler, repetitions: int
) -> dict[str, Any]:
    resumed_ms = []
    for _ in range(repetitions):
        execution_id = await scheduler.start(bench_inbox, {})
        await _until_status(scheduler, execution_id, "waiting")
        await asyncio.sleep(random.uniform(0.05, IDLE_POLL_INTERVAL))
        sent = time.time()
        await sender.send(execution_id, "go", {"n": 1})
        stamp = await scheduler.wait(execution_id, timeout=WAIT_TIMEOUT)
        resumed_ms.append((stamp - sent) * 1e3)
    return {"resumed_ms": percentiles(resumed_ms), "samples_ms": resumed_ms}


async def _child_latencies(scheduler: zart.DurableScheduler, repetitions: int) -> dict[str, Any]:
    result_ms = []
    for _ in range(repetitions):
        await asyncio.sleep(random.uniform(0.05, IDLE_POLL_INTERVAL))
        execution_id = await scheduler.start(bench_parent, {})
        started, resumed = await scheduler.wait(execution_id, timeout=WAIT_TIMEOUT)
        result_ms.append((resumed - started) * 1e3)
    return {"start_to_result_ms": percentiles(result_ms), "samples_ms": result_ms}


async def _interleaved(
    scheduler: zart.DurableScheduler, other: zart.DurableScheduler, repetitions: int
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``repetitions`` of each latency, taken in turn, each kind's samples summarised alone."""
    events, messages, children = [], [], []
    for _ in range(repetitions):
        events.append(await _event_latencies(scheduler, other, 1))
        messages.append(await _message_latencies(scheduler, other, 1))
        children.append(await _child_latencies(scheduler, 1))

    def summary(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
        samples = [sample for run in runs for sample in run["samples_ms"]]
        return {key: percentiles(samples), "samples_ms": samples}

    return (
        summary(events, "resumed_ms"),
        summary(messages, "resumed_ms"),
        summary(children, "start_to_result_ms"),
    )


async def _fan_out(scheduler: zart.DurableScheduler, children: int) -> dict[str, Any]:
    execution_id = await scheduler.start(bench_fan_out, {"children": children})
    await scheduler.wait(execution_id, timeout=WAIT_TIMEOUT)
    record = await scheduler.status(execution_id)
    assert record.completed_at is not None
    seconds = (record.completed_at - record.created_at).total_seconds()
    return {"children": children, "seconds": seconds, "children_per_second": children / seconds}


async def measure(url: str, repetitions: int, children: int) -> dict[str, Any]:
    scheduler = zart.DurableScheduler(url, inline_wait_limit=0)
    other = zart.DurableScheduler(url)  # no worker: NOTIFY (or the poll) must wake it
    try:
        await scheduler.migrate()
        async with scheduler.run_worker(poll_interval=IDLE_POLL_INTERVAL):
            await _event_latencies(scheduler, other, 3)  # warm-up
            await _message_latencies(scheduler, other, 3)
            await _child_latencies(scheduler, 3)
            # Interleaved, one of each kind at a time: measured in three blocks, the ratios
            # moved with the machine's fsync latency between the blocks (1.36-2.09x for the
            # child over six runs of the same code).
            event, message, child = await _interleaved(scheduler, other, repetitions)
            fan_out = await _fan_out(scheduler, children)
    finally:
        await other.close()
        await scheduler.close()
    event_p50 = event["resumed_ms"]["p50"]
    return {
        "event_resumed_p50_ms": event_p50,
        "message_resumed_p50_ms": message["resumed_ms"]["p50"],
        "child_start_to_result_p50_ms": child["start_to_result_ms"]["p50"],
        "message_over_event": message["resumed_ms"]["p50"] / event_p50,
        "child_over_event": child["start_to_result_ms"]["p50"] / event_p50,
        "fan_out": fan_out,
        "detail": {"event": event, "message": message, "child": child},
    }


def main() -> None:
    """Alone (``python -m bench.composition [--url URL]``), or as ``bench.run``'s phase
    ``composition`` (``--target JSON --out FILE --phase composition``)."""
    if "--target" in sys.argv:
        from bench.measure import parse_arguments, write_figures

        target = parse_arguments().target
        found = asyncio.run(measure(target.url, REPETITIONS, FAN_OUT))
        found.pop("detail")
        write_figures({"composition": found}, parse_arguments().out)
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", help="a PostgreSQL (or SQLite) URL; default: a throwaway server")
    parser.add_argument("--repetitions", type=int, default=REPETITIONS)
    parser.add_argument("--fan-out", type=int, default=FAN_OUT)
    arguments = parser.parse_args()
    server = None
    url = arguments.url
    if url is None:
        from tests.pg_server import start_postgres

        server = start_postgres(durable=True)
        server.create_database("zart_composition")
        url = server.url("zart_composition")
    try:
        figures = asyncio.run(measure(url, arguments.repetitions, arguments.fan_out))
    finally:
        if server is not None:
            server.stop()
    detail = figures.pop("detail")
    print(json.dumps(figures, indent=2))
    for name, values in detail.items():
        print(name, json.dumps({k: v for k, v in values.items() if k != "samples_ms"}))


if __name__ == "__main__":
    main()
