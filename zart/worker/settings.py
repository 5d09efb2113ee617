"""How a worker runs (:class:`WorkerSettings`), and what a worker process does once after
start-up (:func:`freeze_startup_objects`)."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from zart.durations import parse_duration
from zart.errors import ConfigurationError
from zart.models.queues import check_queue_name
from zart.runtime.crashes import DEFAULT_MAX_CLAIMS

#: How long the schedules' firing history is kept by default.
DEFAULT_SCHEDULE_HISTORY = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How a worker runs. Every duration is in seconds."""

    concurrency: int = 64
    lease_timeout: float = 30.0
    heartbeat_interval: float | None = None  # default: a third of the lease timeout
    poll_interval: float = 0.5
    shutdown_timeout: float = 30.0
    #: Seconds before a timer is due that the worker may claim its waiting execution and hold
    #: it, to start it the moment it is due (PostgreSQL; 0 turns it off).
    claim_ahead: float = 2.0
    #: At most this many executions held that way at once.
    claim_ahead_limit: int = 10_000
    #: Claims in a row that may end without a report (the worker died or lost its lease
    #: mid-run) before the next one fails the execution as a crash loop, for handlers that
    #: set no ``max_claims`` of their own.
    max_claims: int = DEFAULT_MAX_CLAIMS
    #: How long after they finished the executions of tasks without a ``retention`` of their
    #: own are deleted in the background (a duration: ``"30d"``, a ``timedelta`` or seconds;
    #: ``None``: kept for ever).
    retention: timedelta | float | str | None = None
    #: Seconds between two passes of the background pruning.
    prune_interval: float = 60.0
    #: How long the schedules' firing history is kept (by a worker that fires schedules),
    #: also after its schedule was removed; ``None``: for ever.
    schedule_history: timedelta | float | str | None = DEFAULT_SCHEDULE_HISTORY
    #: The queues this worker claims from (``zart worker --queue emails``); ``None``: every
    #: queue. A worker never claims an execution of a task it does not run, whatever its queue.
    queues: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigurationError(f"concurrency must be at least 1, not {self.concurrency}")
        if self.lease_timeout <= 0:
            raise ConfigurationError(f"lease_timeout must be positive, not {self.lease_timeout}")
        if self.heartbeat_interval is not None and not (
            0 < self.heartbeat_interval < self.lease_timeout
        ):
            raise ConfigurationError("heartbeat_interval must be positive and below lease_timeout")
        if self.poll_interval <= 0:
            raise ConfigurationError(f"poll_interval must be positive, not {self.poll_interval}")
        if self.claim_ahead < 0:
            raise ConfigurationError(f"claim_ahead must be at least 0, not {self.claim_ahead}")
        if self.max_claims < 1:
            raise ConfigurationError(f"max_claims must be at least 1, not {self.max_claims}")
        for name in ("retention", "schedule_history"):  # durations, read once
            object.__setattr__(self, name, _positive_duration(getattr(self, name), name))
        if self.prune_interval <= 0:
            raise ConfigurationError(f"prune_interval must be positive, not {self.prune_interval}")
        if self.queues is not None:
            object.__setattr__(self, "queues", _checked_queues(self.queues))
        if self.claim_ahead_limit < 0:
            raise ConfigurationError(
                f"claim_ahead_limit must be at least 0, not {self.claim_ahead_limit}"
            )

    @property
    def kept_for(self) -> timedelta | None:
        """``retention`` as read (a ``timedelta``), or ``None``."""
        return self.retention if isinstance(self.retention, timedelta) else None

    @property
    def history_kept_for(self) -> timedelta | None:
        """``schedule_history`` as read (a ``timedelta``), or ``None``."""
        history = self.schedule_history
        return history if isinstance(history, timedelta) else None

    @property
    def heartbeat_every(self) -> float:
        return self.heartbeat_interval or self.lease_timeout / 3


def _positive_duration(value: timedelta | float | str | None, name: str) -> timedelta | None:
    if value is None:
        return None
    kept = parse_duration(value, name=name)
    if kept <= timedelta(0):
        raise ConfigurationError(f"{name} must be positive, not {value!r}")
    return kept


def _checked_queues(queues: object) -> tuple[str, ...]:
    if isinstance(queues, str) or not isinstance(queues, tuple | list) or not queues:
        raise ConfigurationError("queues must be a non-empty list of queue names")
    return tuple(sorted({check_queue_name(q) for q in queues}))


def freeze_startup_objects() -> int:
    """Collect garbage once, then move every object left (the modules, the app, the engine:
    what lives as long as the process) out of reach of Python's cyclic garbage collector,
    and return how many that was. A worker process calls it once it has started.

    Without it, a burst of work (10,000 sleepers resumed at once) promotes enough short-lived
    objects that the collector scans the whole process several times a second: a quarter of
    the worker's CPU went there in ``bench.wake_profile``. ``zart worker`` calls it; an app
    running a worker of its own may call it after its start-up (:func:`gc.freeze`)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


#: The cyclic garbage collector's thresholds in a worker process (:func:`collect_less_often`):
#: a young-generation pass every 50,000 allocations instead of 700, an older one every 20 of
#: those, a full one every 100 of these (and, as always, only once the objects that survived
#: since the last full one are a quarter of those it kept).
WORKER_GC_THRESHOLDS = (50_000, 20, 100)


def collect_less_often() -> tuple[int, int, int]:
    """Set the garbage collector's thresholds to :data:`WORKER_GC_THRESHOLDS` and return the
    ones they replace. A worker process calls it once it has started, beside
    :func:`freeze_startup_objects`.

    A crowd of runs resumed at once keeps thousands of tasks alive, and each of them
    allocates; at the default thresholds the collector then walked that whole crowd again and
    again: 10,000 sleepers resumed at once on 10,000 slots cost 181-203 µs of the worker's
    CPU each and the last resumed 1.08-1.14 s after due; at these thresholds 128-139 µs and
    0.51-0.57 s (``bench.wake_profile``). Cyclic garbage lives a little longer (at most
    50,000 allocations before a pass looks at it). ``zart worker`` calls it; an app running a
    worker of its own decides for its own process (:func:`gc.set_threshold`)."""
    previous: tuple[int, int, int] = gc.get_threshold()
    gc.set_threshold(*WORKER_GC_THRESHOLDS)
    return previous


#: Values of ``ZART_EVENT_LOOP``, read by :func:`event_loop_factory`.
EVENT_LOOPS = ("uvloop", "asyncio")


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop a worker process (``zart worker``, ``zart serve``) runs on: uvloop's
    where it is installed (a dependency of Zart but on Windows), else asyncio's own (``None``:
    the default). ``ZART_EVENT_LOOP=asyncio`` keeps asyncio's; ``ZART_EVENT_LOOP=uvloop``
    requires uvloop.

    uvloop runs the loop and its sockets in C: 10,000 sleepers resumed on 1,000 slots cost
    88 µs of the worker's CPU each instead of 101 (``bench.wake_profile``, one run each; in
    ``make bench`` within the run-to-run spread, docs/workers.md); a sequential workflow,
    which waits for each commit, ran as fast either way. An app running a worker of
    its own runs it on its own loop (uvicorn, for one, takes uvloop when it is installed)."""
    chosen = os.environ.get("ZART_EVENT_LOOP", "").strip().lower() or None
    if chosen is not None and chosen not in EVENT_LOOPS:
        raise ConfigurationError(
            f"ZART_EVENT_LOOP must be one of {', '.join(EVENT_LOOPS)}, not {chosen!r}"
        )
    if chosen == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if chosen == "uvloop":
            raise ConfigurationError(
                "ZART_EVENT_LOOP=uvloop, but uvloop is not installed: pip install uvloop"
            ) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
