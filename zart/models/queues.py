"""Queues: what a queue's limits are, how they are written, and the queues declared in code.

A queue (``zart.Queue(name, concurrency=, partition_concurrency=, rate_limit=)``) is stored
in ``zart_queues`` so that every worker enforces the same limits and an operator can change
them at run time (``zart queues set``). Its limits, all optional:

- ``concurrency``: at most that many of its executions *running* at once, across workers;
- ``partition_concurrency``: at most that many running per ``partition_key``;
- ``rate_limit`` ``"N/period"`` (``"100/1m"``, ``"20/1s"``): at most N starts (claims of a
  ``scheduled`` execution) in any window of that period, across workers;
- ``partition_rate_limit`` ``"N/period"``: the same, per ``partition_key`` (a tenant's
  starts are limited on their own; executions without a key count as one partition).

A queue with none of them (and not paused) is *unlimited*: its executions are claimed by the
worker's ordinary claim, at the ordinary cost. The rules here are pure: parsing and checks,
each raising :class:`~zart.errors.InvalidQueue` naming the problem before anything is stored.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from zart.durations import parse_duration
from zart.errors import ConfigurationError, InvalidName, InvalidQueue
from zart.models.names import check_name

#: The queue of every execution whose handler and start name none.
DEFAULT_QUEUE = "default"

#: A queue name: letters, digits and ``_ . - : /``, at most 64 characters (it is shown in
#: tables and URLs, and a typo with a space should not make a queue of its own).
QUEUE_NAME = re.compile(r"[A-Za-z0-9_.\-:]{1,64}")
_RATE = re.compile(r"\s*(?P<count>\d+)\s*/\s*(?P<period>\S+)\s*")
#: The largest limit accepted (a 32-bit column).
MAX_LIMIT = 2**31 - 1


def check_queue_name(value: object) -> str:
    """``value`` if it is a valid queue name, else :class:`~zart.errors.InvalidQueue`."""
    if not isinstance(value, str):
        raise InvalidQueue(f"a queue name must be a string, not {type(value).__name__}")
    if QUEUE_NAME.fullmatch(value) is None:
        shown = repr(value) if len(value) <= 40 else f"{value[:40]!r}..."
        raise InvalidQueue(
            f"queue name {shown} is not valid: use 1 to 64 letters, digits and '_ . - :'"
        )
    return value


def check_limit(value: object, what: str) -> int | None:
    """A concurrency limit: ``None`` (no limit) or a whole number from 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise InvalidQueue(f"{what} must be a whole number of at least 1 (or None), not {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``count`` starts in any window of ``period``."""

    count: int
    period: timedelta

    @classmethod
    def parse(cls, value: object) -> RateLimit:
        """Read ``"N/period"``: N a whole number from 1, the period a duration (``"1s"``,
        ``"1m"``, ``"250ms"``; a bare unit ``"s" "m" "h" "d"`` means one of it)."""
        if isinstance(value, RateLimit):
            return value
        if not isinstance(value, str):
            raise InvalidQueue(
                f"a rate limit is a string like '100/1m', not {type(value).__name__}"
            )
        match = _RATE.fullmatch(value)
        if match is None:
            raise InvalidQueue(f"rate limit {value!r} is not 'N/period' (e.g. '100/1m', '20/1s')")
        period_text = match["period"]
        if period_text in ("ms", "s", "m", "h", "d"):
            period_text = f"1{period_text}"
        try:
            period = parse_duration(period_text, name="rate limit period")
        except ConfigurationError as exc:
            raise InvalidQueue(f"rate limit {value!r}: {exc}") from None
        count = int(match["count"])
        if not 1 <= count <= MAX_LIMIT:
            raise InvalidQueue(f"rate limit {value!r}: the count must be at least 1")
        if period < timedelta(milliseconds=1) or period > timedelta(days=365):
            raise InvalidQueue(f"rate limit {value!r}: the period must be from 1ms to 365d")
        return cls(count, period)

    def __str__(self) -> str:
        return f"{self.count}/{_duration_text(self.period)}"


def _duration_text(period: timedelta) -> str:
    ms = round(period.total_seconds() * 1000)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def parse_rate_limit(value: object) -> RateLimit | None:
    """``None`` or a :class:`RateLimit` read from ``value`` (see :meth:`RateLimit.parse`)."""
    return None if value is None else RateLimit.parse(value)


#: A queue's limits, by the name they have everywhere (``zart.Queue``'s arguments, the
#: columns of ``zart_queues``, ``set_queue``'s keywords, the CLI's options and the HTTP
#: fields in camelCase): the counts, then the rates (``"N/period"``).
COUNT_LIMITS = ("concurrency", "partition_concurrency")
RATE_LIMITS = ("rate_limit", "partition_rate_limit")
LIMITS = (*COUNT_LIMITS, *RATE_LIMITS)


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """A queue's limits (``None``: no such limit)."""

    concurrency: int | None = None
    partition_concurrency: int | None = None
    rate_limit: RateLimit | None = None
    partition_rate_limit: RateLimit | None = None

    @classmethod
    def checked(cls, **given: object) -> QueueLimits:
        """Limits from ``given`` (names of :data:`LIMITS`; others absent), each checked."""
        unknown = set(given) - set(LIMITS)
        if unknown:
            raise InvalidQueue(f"unknown queue limit {sorted(unknown)[0]!r}: one of {LIMITS}")
        return cls(
            check_limit(given.get("concurrency"), "concurrency"),
            check_limit(given.get("partition_concurrency"), "partition_concurrency"),
            parse_rate_limit(given.get("rate_limit")),
            parse_rate_limit(given.get("partition_rate_limit")),
        )

    @classmethod
    def stored(cls, row: Mapping[str, Any]) -> QueueLimits:
        """The limits of a stored queue row (or of :meth:`declaration`'s form)."""
        return cls.checked(**{name: row[name] for name in LIMITS})

    def replaced(self, given: QueueLimits, names: Iterable[str]) -> QueueLimits:
        """These limits with the limits ``names`` taken from ``given`` (``None`` there removes
        a limit)."""
        return dataclasses.replace(self, **{name: getattr(given, name) for name in names})

    @property
    def unlimited(self) -> bool:
        return all(getattr(self, name) is None for name in LIMITS)

    def declaration(self) -> dict[str, Any]:
        """The limits as stored: JSON-ready (``declared`` is compared with it)."""
        found: dict[str, Any] = {name: getattr(self, name) for name in COUNT_LIMITS}
        for name in RATE_LIMITS:
            rate = getattr(self, name)
            found[name] = None if rate is None else str(rate)
        return found


def check_priority(value: object) -> int:
    """A start's priority: a whole number (higher first), 0 by default."""
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_LIMIT:
        raise InvalidQueue(f"priority must be a whole number, not {value!r}")
    return value


def check_partition_key(value: object) -> str | None:
    """A start's partition key: ``None`` or a valid name (``"tenant-42"``)."""
    if value is None:
        return None
    try:
        return check_name(value, "partition key")
    except InvalidName as exc:
        raise InvalidQueue(str(exc)) from None


class Queue:
    """A queue of executions whose limits hold across every worker (``docs/queues.md``).

    ``zart.Queue("emails", concurrency=10, partition_concurrency=1, rate_limit="100/1m",
    partition_rate_limit="10/1m")`` declares it in code: it is stored when a worker or
    scheduler of this process starts, and an operator's later change (``zart queues set``)
    wins until this declaration changes. Handlers join it with ``@zart.durable(...,
    queue="emails")`` (or the queue itself); a start may name one (``scheduler.start(...,
    queue="emails")``). Bad values raise
    :class:`~zart.errors.InvalidQueue` here.
    """

    __slots__ = ("limits", "name")

    def __init__(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        partition_concurrency: int | None = None,
        rate_limit: str | None = None,
        partition_rate_limit: str | None = None,
    ) -> None:
        self.name = check_queue_name(name)
        self.limits = QueueLimits.checked(
            concurrency=concurrency,
            partition_concurrency=partition_concurrency,
            rate_limit=rate_limit,
            partition_rate_limit=partition_rate_limit,
        )
        existing = _declared.get(self.name)
        if existing is not None and existing.limits != self.limits:
            raise InvalidQueue(
                f"queue {self.name!r} is declared twice with different limits"
                f" ({existing.limits.declaration()} and {self.limits.declaration()})"
            )
        _declared[self.name] = self

    @property
    def concurrency(self) -> int | None:
        return self.limits.concurrency

    @property
    def partition_concurrency(self) -> int | None:
        return self.limits.partition_concurrency

    @property
    def rate_limit(self) -> str | None:
        return None if self.limits.rate_limit is None else str(self.limits.rate_limit)

    @property
    def partition_rate_limit(self) -> str | None:
        rate = self.limits.partition_rate_limit
        return None if rate is None else str(rate)

    def __repr__(self) -> str:
        limits = ", ".join(f"{k}={v!r}" for k, v in self.limits.declaration().items() if v)
        return f"Queue({self.name!r}{', ' if limits else ''}{limits})"


_declared: dict[str, Queue] = {}


def declared_queues() -> list[Queue]:
    """The queues declared in this process (``zart.Queue(...)``), by name."""
    return [_declared[name] for name in sorted(_declared)]


def queue_name_of(queue: object) -> str:
    """The name of ``queue`` (a :class:`Queue` or its name), checked."""
    return queue.name if isinstance(queue, Queue) else check_queue_name(queue)
