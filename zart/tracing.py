"""OpenTelemetry traces (the optional ``otel`` extra: ``opentelemetry-api``).

Spans go to the application's tracer provider (``opentelemetry.trace.set_tracer_provider``,
or whatever an auto-instrumentation agent set up): Zart never configures one.

- ``zart.start <task>``: a start (:meth:`DurableScheduler.start`), a child of whatever span is
  current in the caller (its HTTP request, say). The trace context current inside it is
  stored with the execution (``trace_context``, written by the application's propagator,
  W3C ``traceparent`` by default), in the caller's transaction when it gives ``session=``.
- ``zart.run <task>``: one pass of a run on a worker, whose parent is that stored context,
  so the request's trace shows the workflow it started, even when a worker on another
  machine runs it hours later.
- ``zart.step <step>``: one step attempt, a child of its run's span; an attempt that raises
  records the exception and sets the span's status to error.

Attributes: ``zart.execution_id``, ``zart.task_name``, ``zart.step_name``, ``zart.attempt``
(and ``zart.status`` on a run span when it ends). Without ``opentelemetry-api`` installed
every function here is a no-op and nothing is stored; with it but no tracer provider set, no
span is made (:func:`recording`), and a trace context the caller has is still stored.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

#: The pip extra that brings OpenTelemetry in.
EXTRA = "zart-durable[otel]"

_AVAILABLE = importlib.util.find_spec("opentelemetry") is not None and (
    importlib.util.find_spec("opentelemetry.trace") is not None
)

if _AVAILABLE:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import Status, StatusCode

    _tracer: Any = trace.get_tracer("zart")
else:  # pragma: no cover - depends on the installation
    _tracer = None


def available() -> bool:
    """Whether ``opentelemetry-api`` is installed (spans are made once a tracer provider is
    set, see :func:`recording`)."""
    return _AVAILABLE


def recording() -> bool:
    """Whether spans go anywhere: ``opentelemetry-api`` is installed *and* the application
    set a tracer provider (or an agent did). The API often comes in with another library and
    nobody sets one; its proxy then makes a non-recording span per call, and a step paid for
    two context switches and an attribute dict of a span nobody sees. Asked at each span, so
    a provider set after Zart was imported is used from then on."""
    return _AVAILABLE and not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def carrier() -> dict[str, str] | None:
    """The current trace context as the propagator writes it (``traceparent``...), to store
    with a start; ``None`` outside a trace (or without OpenTelemetry)."""
    if not _AVAILABLE or not trace.get_current_span().get_span_context().is_valid:
        return None
    written: dict[str, str] = {}
    propagate.inject(written)
    return written or None


@contextlib.contextmanager
def start_span(task_name: str) -> Iterator[None]:
    """The span of a start (``zart.start <task>``), current while it runs."""
    if not recording():
        yield
        return
    with _tracer.start_as_current_span(
        f"zart.start {task_name}",
        kind=trace.SpanKind.PRODUCER,
        attributes={"zart.task_name": task_name},
    ):
        yield


class RunSpan:
    """The span of one pass of a run; :meth:`ended` records how it ended."""

    def __init__(self, span: Any) -> None:
        self._span = span

    def ended(self, status: str, error: str | None = None) -> None:
        if self._span is None:
            return
        self._span.set_attribute("zart.status", status)
        if error is not None:
            self._span.set_status(Status(StatusCode.ERROR, error))


#: What the span functions return when no span would be recorded (:func:`recording`): one
#: reusable context each, so a run and its steps pay no generator for spans nobody makes.
_NO_RUN_SPAN = contextlib.nullcontext(RunSpan(None))
_NO_SPAN: AbstractContextManager[None] = contextlib.nullcontext()


def run_span(
    execution_id: str, task_name: str, stored: dict[str, str] | None, attempt: int
) -> AbstractContextManager[RunSpan]:
    """The span of a run's pass (``zart.run <task>``), current while it runs, its parent the
    trace context ``stored`` with the start. ``attempt``: the claim number."""
    if not recording():
        return _NO_RUN_SPAN
    return _run_span(execution_id, task_name, stored, attempt)


@contextlib.contextmanager
def _run_span(
    execution_id: str, task_name: str, stored: dict[str, str] | None, attempt: int
) -> Iterator[RunSpan]:
    parent = propagate.extract(stored) if stored else None
    with _tracer.start_as_current_span(
        f"zart.run {task_name}",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        attributes={
            "zart.execution_id": execution_id,
            "zart.task_name": task_name,
            "zart.attempt": attempt,
        },
    ) as span:
        yield RunSpan(span)


def step_span(
    execution_id: str, task_name: str, step_name: str, attempt: int
) -> AbstractContextManager[None]:
    """The span of one step attempt (``zart.step <step>``), current while its code runs; an
    exception escaping it is recorded on it (and sets its status to error)."""
    if not recording():
        return _NO_SPAN
    return _step_span(execution_id, task_name, step_name, attempt)


@contextlib.contextmanager
def _step_span(execution_id: str, task_name: str, step_name: str, attempt: int) -> Iterator[None]:
    with _tracer.start_as_current_span(
        f"zart.step {step_name}",
        attributes={
            "zart.execution_id": execution_id,
            "zart.task_name": task_name,
            "zart.step_name": step_name,
            "zart.attempt": attempt,
        },
    ):
        yield
