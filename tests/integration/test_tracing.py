"""OpenTelemetry traces (acceptance 2 of #16): a request's span, the start made in it (also
inside the application's ``AsyncSession`` transaction), the worker's run span and its step
spans are one trace, on both backends; a failed attempt is recorded on its span."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from sqlalchemy.ext.asyncio import AsyncSession

import zart
from tests.integration.runtime_helpers import FAST_WORKER
from zart import DurableScheduler

#: execution id -> attempts of its flaky step so far
attempts: dict[str, int] = {}


@zart.step("tracing-fetch")
async def fetch(n: int) -> int:
    return n * 2


@zart.step("tracing-flaky", retry="fixed(1, 10ms)")
async def flaky() -> str:
    execution_id = zart.context().execution_id
    attempts[execution_id] = attempts.get(execution_id, 0) + 1
    if attempts[execution_id] == 1:
        raise RuntimeError("first try fails")
    return "ok"


@zart.durable("tracing-flow")
async def flow(data: dict[str, Any]) -> int:
    doubled = await fetch(int(data["n"]))
    await flaky()
    return doubled


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    """The application's tracer provider, set once for the process (OpenTelemetry allows one)."""
    memory = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return memory


def _trace(exporter: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def _check_workflow_trace(spans: list[ReadableSpan], request: ReadableSpan, eid: str) -> None:
    start = _one(spans, "zart.start tracing-flow")
    run = _one(spans, "zart.run tracing-flow")
    fetch_span = _one(spans, "zart.step tracing-fetch")
    flaky_spans = sorted(
        (s for s in spans if s.name == "zart.step tracing-flaky"),
        key=lambda s: s.attributes["zart.attempt"],  # type: ignore[index]
    )
    assert start.parent is not None
    assert start.parent.span_id == request.context.span_id
    assert run.parent is not None
    assert run.parent.span_id == start.context.span_id
    for step in (fetch_span, *flaky_spans):
        assert step.parent is not None
        assert step.parent.span_id == run.context.span_id
        assert step.attributes["zart.execution_id"] == eid  # type: ignore[index]
        assert step.attributes["zart.task_name"] == "tracing-flow"  # type: ignore[index]
    assert run.attributes["zart.execution_id"] == eid  # type: ignore[index]
    assert run.attributes["zart.status"] == "completed"  # type: ignore[index]
    assert fetch_span.attributes["zart.step_name"] == "tracing-fetch"  # type: ignore[index]
    assert [s.attributes["zart.attempt"] for s in flaky_spans] == [0, 1]  # type: ignore[index]
    failed, passed = flaky_spans
    assert failed.status.status_code is StatusCode.ERROR
    assert [e.attributes["exception.message"] for e in failed.events] == ["first try fails"]  # type: ignore[index]
    assert passed.status.status_code is not StatusCode.ERROR


async def test_a_request_trace_shows_the_workflow_it_started(
    scheduler: DurableScheduler, exporter: InMemorySpanExporter
) -> None:
    tracer = trace.get_tracer("the-app")
    async with scheduler.run_worker(**FAST_WORKER):
        with tracer.start_as_current_span("POST /signup") as request_span:
            eid = await scheduler.start(flow, {"n": 3})
        assert await scheduler.wait(eid, timeout=20) == 6

        # A start inside the application's transaction: the context is stored with its row.
        with tracer.start_as_current_span("POST /orders") as order_span:
            async with AsyncSession(scheduler.engine) as session, session.begin():
                in_transaction = await scheduler.start(flow, {"n": 5}, session=session)
        assert await scheduler.wait(in_transaction, timeout=20) == 10

    first = request_span.get_span_context().trace_id
    spans = _trace(exporter, first)
    _check_workflow_trace(spans, _one(spans, "POST /signup"), eid)
    second = order_span.get_span_context().trace_id
    spans = _trace(exporter, second)
    _check_workflow_trace(spans, _one(spans, "POST /orders"), in_transaction)
    assert first != second
    stored = await scheduler.status(in_transaction)
    assert stored.trace_context is not None
    assert "traceparent" in stored.trace_context


async def test_a_start_outside_any_trace_roots_one(
    scheduler: DurableScheduler, exporter: InMemorySpanExporter
) -> None:
    eid = await scheduler.start(flow, {"n": 1})
    async with scheduler.run_worker(**FAST_WORKER):
        assert await scheduler.wait(eid, timeout=20) == 2
    start = next(
        s
        for s in exporter.get_finished_spans()
        if s.name == "zart.start tracing-flow"
        and s.parent is None
        and any(
            r.attributes.get("zart.execution_id") == eid
            for r in _trace(exporter, s.context.trace_id)
        )  # type: ignore[union-attr]
    )
    run = _one(_trace(exporter, start.context.trace_id), "zart.run tracing-flow")
    assert run.parent is not None
    assert run.parent.span_id == start.context.span_id


def test_no_span_is_made_until_the_application_sets_a_tracer_provider() -> None:
    """With ``opentelemetry-api`` installed but no provider set (the API's proxy), the span
    functions make nothing; a provider set later is used from then on. In a process of its
    own: a process gets one tracer provider, and this one's is set by the fixture above."""
    script = textwrap.dedent(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from zart import tracing

        assert not tracing.recording()
        assert tracing.step_span("e", "t", "s", 0) is tracing._NO_SPAN
        assert tracing.run_span("e", "t", None, 1) is tracing._NO_RUN_SPAN
        with tracing.start_span("t"):
            assert not trace.get_current_span().get_span_context().is_valid
        memory = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        trace.set_tracer_provider(provider)
        assert tracing.recording()
        with tracing.start_span("t"), tracing.step_span("e", "t", "s", 0):
            pass
        print(sorted(span.name for span in memory.get_finished_spans()))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['zart.start t', 'zart.step s']"
