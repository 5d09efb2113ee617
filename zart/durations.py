"""Durations and retry policies, as written in decorators and configuration.

A duration is a ``timedelta``, a number of seconds (int or float), or a string with one unit:
``"250ms"``, ``"2s"``, ``"1.5s"``, ``"5m"``, ``"1h"``, ``"1d"`` (or none: ``"30"`` is seconds).
A retry policy is written ``fixed(N, DELAY)``, ``exponential(N, DELAY)`` or
``exponential(N, DELAY, max=DELAY)``, where N is the number of retries *after* the first try:
``fixed(2, 1s)`` allows attempts 0, 1 and 2, waiting one second before each retry.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar, Literal

from zart.errors import ConfigurationError

__all__ = ["RetryPolicy", "format_duration", "parse_duration", "parse_retry"]

_DURATION_FORMS = (
    "a timedelta, a number of seconds >= 0, or a string like '250ms', '2s', '1.5s', '5m', "
    "'1h' or '1d'"
)
_DURATION = re.compile(r"(?P<number>\d+(?:\.\d+)?|\.\d+)(?P<unit>ms|s|m|h|d)?")
_UNITS = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

_RETRY_FORMS = (
    "expected fixed(N, DELAY), exponential(N, DELAY) or exponential(N, DELAY, max=DELAY), "
    "where N is the number of retries after the first try and DELAY a duration such as "
    "250ms, 2s, 5m, 1h or 1d"
)
_RETRY = re.compile(r"\s*(?P<kind>[A-Za-z_]\w*)\s*\((?P<args>.*)\)\s*", re.DOTALL)
_MAX_ARGUMENT = re.compile(r"max\s*=\s*(?P<value>.*)", re.DOTALL)


def parse_duration(value: timedelta | float | int | str, *, name: str = "duration") -> timedelta:
    """Read a duration: a ``timedelta``, seconds as int or float, or ``"<number><unit>"``.

    Units are ``ms``, ``s``, ``m`` (minutes), ``h`` and ``d``; a number without a unit is
    seconds, as a number is (``"0"``, ``"30"``: environment variables); the number may have a
    fraction (``"1.5s"``) and the string may have surrounding whitespace. Raises
    :class:`~zart.errors.ConfigurationError` naming ``name`` for a negative, non-finite or
    malformed value, a bool, or a string without a known unit.
    """
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise _bad_duration(name, value, "it is negative")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _bad_duration(name, value, f"a {type(value).__name__} is not a duration")
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if match is None:
            raise _bad_duration(name, value)
        amount, unit = float(match["number"]), _UNITS[match["unit"] or "s"]
    else:
        if not math.isfinite(value) or value < 0:
            raise _bad_duration(name, value, "it must be finite and >= 0")
        amount, unit = float(value), "seconds"
    try:
        return timedelta(**{unit: amount})
    except OverflowError:
        raise _bad_duration(name, value, "it is too large") from None


def _bad_duration(name: str, value: object, reason: str = "") -> ConfigurationError:
    because = f" ({reason})" if reason else ""
    return ConfigurationError(f"invalid {name} {value!r}{because}: expected {_DURATION_FORMS}")


def format_duration(value: timedelta) -> str:
    """The shortest string :func:`parse_duration` reads back as ``value`` (``"90s"``, ``"1h"``)."""
    microseconds = value // timedelta(microseconds=1)
    for unit, size in (("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000)):
        if microseconds and microseconds % size == 0:
            return f"{microseconds // size}{unit}"
    if microseconds % 1_000_000 == 0:
        return f"{microseconds // 1_000_000}s"
    if microseconds % 1_000 == 0:
        return f"{microseconds // 1_000}ms"
    whole, fraction = divmod(microseconds, 1_000)
    return f"{whole}.{fraction:03d}ms"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a failed step attempt is tried again, and how long to wait in between.

    ``max_retries`` counts the retries after the first try (attempt 0), so attempts
    ``0..max_retries`` are allowed. The delay before retry ``n`` is ``delay`` (fixed) or
    ``delay * 2**(n-1)`` capped by ``max_delay`` (exponential). Delays here are deterministic;
    the runtime may add jitter.
    """

    max_retries: int
    delay: timedelta
    backoff: Literal["fixed", "exponential"]
    max_delay: timedelta | None = None

    NONE: ClassVar[RetryPolicy]
    """No retries: the first failure is final."""

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise ConfigurationError(f"max_retries must be an int, not {self.max_retries!r}")
        if self.max_retries < 0:
            raise ConfigurationError(f"max_retries must be >= 0, not {self.max_retries}")
        if self.backoff not in ("fixed", "exponential"):
            raise ConfigurationError(
                f"backoff must be 'fixed' or 'exponential', not {self.backoff!r}"
            )
        parse_duration(self.delay, name="retry delay")
        if self.max_delay is not None:
            parse_duration(self.max_delay, name="retry max_delay")
            if self.backoff == "fixed":
                raise ConfigurationError("max_delay only applies to exponential backoff")
            if self.max_delay < self.delay:
                raise ConfigurationError(
                    f"max_delay ({format_duration(self.max_delay)}) is smaller than the delay "
                    f"({format_duration(self.delay)})"
                )

    def delay_before(self, attempt: int) -> timedelta:
        """The wait before attempt number ``attempt`` (1 is the first retry)."""
        if attempt < 1:
            raise ValueError(f"attempt {attempt} is not a retry: retries are numbered from 1")
        if self.backoff == "fixed":
            return self.delay
        cap = self.max_delay if self.max_delay is not None else timedelta.max
        if attempt > 128:  # 2**127 microseconds is far past timedelta.max
            return cap if self.delay else self.delay
        try:
            return min(self.delay * (1 << (attempt - 1)), cap)
        except OverflowError:
            return cap

    def allows(self, attempt: int) -> bool:
        """Whether attempt number ``attempt`` (0 is the first try) may run."""
        return attempt <= self.max_retries

    def __str__(self) -> str:
        """The policy in the form :func:`parse_retry` reads, e.g. ``exponential(3, 2s)``."""
        extra = "" if self.max_delay is None else f", max={format_duration(self.max_delay)}"
        return f"{self.backoff}({self.max_retries}, {format_duration(self.delay)}{extra})"


RetryPolicy.NONE = RetryPolicy(max_retries=0, delay=timedelta(0), backoff="fixed")


def parse_retry(value: str | RetryPolicy | None) -> RetryPolicy:
    """Read a retry policy: ``None`` (no retries), a :class:`RetryPolicy`, or a string.

    Strings are ``fixed(N, DELAY)``, ``exponential(N, DELAY)`` or
    ``exponential(N, DELAY, max=DELAY)`` with any whitespace around the parts. Raises
    :class:`~zart.errors.ConfigurationError` quoting the string and showing these forms.
    """
    if value is None:
        return RetryPolicy.NONE
    if isinstance(value, RetryPolicy):
        return value
    if not isinstance(value, str):
        raise ConfigurationError(
            f"invalid retry policy {value!r}: a {type(value).__name__} is not a policy; "
            f"{_RETRY_FORMS}"
        )
    match = _RETRY.fullmatch(value)
    if match is None:
        raise _bad_retry(value, "not of the form KIND(ARGUMENTS)")
    kind = match["kind"]
    if kind not in ("fixed", "exponential"):
        raise _bad_retry(value, f"unknown kind {kind!r}")
    arguments = [argument.strip() for argument in match["args"].split(",")]
    if len(arguments) == 3 and kind == "fixed" and _MAX_ARGUMENT.fullmatch(arguments[2]):
        raise _bad_retry(value, "max= only applies to exponential backoff")
    if len(arguments) == 3 and kind == "exponential":
        maximum = _MAX_ARGUMENT.fullmatch(arguments[2])
        if maximum is None:
            raise _bad_retry(value, "the third argument must be max=DELAY")
        max_delay: timedelta | None = _retry_duration(value, maximum["value"].strip())
    elif len(arguments) == 2:
        max_delay = None
    else:
        expected = "2 or 3" if kind == "exponential" else "2"
        raise _bad_retry(value, f"{kind} takes {expected} arguments, got {len(arguments)}")
    count, delay = arguments[0], _retry_duration(value, arguments[1])
    if not count.isascii() or not count.isdigit():
        raise _bad_retry(value, f"N must be a whole number >= 0, not {count!r}")
    try:
        return RetryPolicy(
            int(count), delay, "fixed" if kind == "fixed" else "exponential", max_delay
        )
    except ConfigurationError as exc:
        raise _bad_retry(value, str(exc)) from None


def _retry_duration(text: str, argument: str) -> timedelta:
    if not argument:
        raise _bad_retry(text, "a DELAY is missing")
    try:
        return parse_duration(argument)
    except ConfigurationError:
        raise _bad_retry(text, f"{argument!r} is not a duration") from None


def _bad_retry(text: str, reason: str) -> ConfigurationError:
    return ConfigurationError(f"invalid retry policy {text!r}: {reason}; {_RETRY_FORMS}")
