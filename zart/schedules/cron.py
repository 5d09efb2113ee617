"""Cron expressions in a named time zone: parsing, validation and fire times.

Pure functions of their arguments (no clock is read here). croniter matches an expression
against *wall-clock* times; this module turns those wall-clock matches into instants in a
named IANA zone (``zoneinfo``), with rules for the two daylight-saving transitions that
croniter on its own gets wrong (it fires a daily job twice in the repeated hour):

- **Spring forward** (a local time that does not exist, e.g. 02:30 on the last Sunday of March
  in Europe/Berlin): the job fires once, at the moment the clock jumps (03:00 local). Several
  missing times collapse into that one firing.
- **Fall back** (a local time that happens twice): a job whose hour field is fixed (``30 2 * *
  *``) fires once, at the first occurrence (02:30 summer time). A job whose hour field is ``*``
  or ``*/n`` (``*/15 * * * *``) follows the clock and fires in both passes, so "every 15
  minutes" stays every 15 minutes in real time. (The rule of Vixie/ISC cron.)

Expressions have 5 fields (minute hour day-of-month month day-of-week) or 6, where the first
is the second (``*/10 * * * * *``, as in Quartz, Spring and the Rust ``cron`` crate); the
aliases ``@hourly @daily @midnight @weekly @monthly @yearly @annually`` are accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from zart.errors import InvalidSchedule

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_DAY = timedelta(days=1)
_SECOND = timedelta(seconds=1)
#: Where validation looks for a first fire time (any fixed instant: validation is pure).
_VALIDATION_START = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Cron:
    """A validated cron expression and the time zone its wall-clock times are read in."""

    expression: str
    timezone: str
    zone: ZoneInfo = field(repr=False, compare=False)
    #: The expression croniter reads (aliases expanded).
    fields: tuple[str, ...] = field(repr=False, compare=False)

    @property
    def with_seconds(self) -> bool:
        return len(self.fields) == 6

    @property
    def repeats_in_fold(self) -> bool:
        """Whether the hour field follows the clock (``*`` or ``*/n``): such a job fires in
        both passes of a repeated hour."""
        return self.fields[-4].startswith("*")

    def next_after(self, after: datetime) -> datetime:
        """The first fire time strictly after ``after`` (aware), as an aware UTC datetime."""
        after = _utc(after)
        # A fall-back in the coming day makes wall-clock order differ from real order by up
        # to its width: start that much earlier, and look that much past the best found.
        slack = max(self._offset(after) - self._offset(after + _DAY), timedelta(0))
        start = self._wall(after) - slack - _SECOND
        best: datetime | None = None
        walls = self._iterate(start, backwards=False)
        for wall in walls:
            if best is not None and wall > self._wall(best) + slack:
                break
            for instant in self._instants(wall):
                if instant > after and (best is None or instant < best):
                    best = instant
        if best is None:  # croniter found no date at all
            raise InvalidSchedule(f"cron expression {self.expression!r} never fires")
        return best

    def previous_before(self, before: datetime) -> datetime:
        """The last fire time strictly before ``before`` (aware), as an aware UTC datetime."""
        before = _utc(before)
        slack = max(self._offset(before - _DAY) - self._offset(before), timedelta(0))
        start = self._wall(before) + slack + _SECOND
        best: datetime | None = None
        for wall in self._iterate(start, backwards=True):
            if best is not None and wall < self._wall(best) - slack:
                break
            for instant in self._instants(wall):
                if instant < before and (best is None or instant > best):
                    best = instant
        if best is None:  # croniter found no date at all
            raise InvalidSchedule(f"cron expression {self.expression!r} never fires")
        return best

    def latest_between(self, first: datetime, last: datetime, limit: int) -> list[datetime]:
        """Up to ``limit`` fire times ``t`` with ``first <= t <= last``: the latest ones,
        oldest first."""
        found: list[datetime] = []
        cursor = _utc(last) + timedelta(microseconds=1)
        first = _utc(first)
        while len(found) < limit:
            instant = self.previous_before(cursor)
            if instant < first:
                break
            found.append(instant)
            cursor = instant
        return found[::-1]

    # -- wall clock <-> instants --------------------------------------------------------------

    def _iterate(self, start: datetime, *, backwards: bool) -> _Walls:
        return _Walls(croniter(" ".join(self.fields), start, second_at_beginning=True), backwards)

    def _wall(self, instant: datetime) -> datetime:
        return instant.astimezone(self.zone).replace(tzinfo=None)

    def _offset(self, instant: datetime) -> timedelta:
        return instant.astimezone(self.zone).utcoffset() or timedelta(0)

    def _instants(self, wall: datetime) -> list[datetime]:
        """The instants at which the zone's clock shows ``wall``: none skipped, one, or two."""
        first = wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
        if first == second:
            return [first]
        if first > second:  # PEP 495: in a gap, fold=0 reads the offset from before the jump
            return [self._transition(second, first)]
        return [first, second] if self.repeats_in_fold else [first]

    def _transition(self, low: datetime, high: datetime) -> datetime:
        """The instant in ``(low, high]`` at which the zone's offset changes (a gap's end)."""
        after = self._offset(high)
        while high - low > _SECOND:
            middle = low + (high - low) / 2
            middle = middle.replace(microsecond=0)
            if middle <= low:
                middle = low + _SECOND
            if self._offset(middle) == after:
                high = middle
            else:
                low = middle
        return high


class _Walls:
    """croniter's wall-clock matches, one after the other (or backwards)."""

    def __init__(self, source: croniter, backwards: bool) -> None:
        self._source = source
        self._backwards = backwards

    def __iter__(self) -> _Walls:
        return self

    def __next__(self) -> datetime:
        try:
            if self._backwards:
                value: datetime = self._source.get_prev(datetime)
            else:
                value = self._source.get_next(datetime)
        except CroniterBadDateError:
            raise StopIteration from None
        return value


def parse_cron(expression: str, timezone: str = "UTC") -> Cron:
    """Validate ``expression`` in ``timezone`` (an IANA name); :class:`InvalidSchedule` names
    what is wrong: the number of fields, a field, a time zone, or an expression that never
    fires."""
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidSchedule("a schedule needs a non-empty cron expression")
    text = " ".join(expression.split())
    expanded = ALIASES.get(text.lower(), text)
    if expanded.startswith("@"):
        raise InvalidSchedule(
            f"unknown cron alias {text!r}; use one of {', '.join(sorted(ALIASES))}"
        )
    fields = tuple(expanded.split(" "))
    if len(fields) not in (5, 6):
        raise InvalidSchedule(
            f"cron expression {text!r} has {len(fields)} fields; use 5 (minute hour"
            " day-of-month month day-of-week) or 6 (a second field first)"
        )
    zone = _zone(timezone)
    try:
        croniter(expanded, _VALIDATION_START, second_at_beginning=True)
    except CroniterError as exc:
        raise InvalidSchedule(f"invalid cron expression {text!r}: {exc}") from None
    except (ValueError, KeyError, TypeError) as exc:  # croniter lets a few escape
        raise InvalidSchedule(f"invalid cron expression {text!r}: {exc}") from None
    cron = Cron(expression=text, timezone=timezone, zone=zone, fields=fields)
    try:
        cron.next_after(_VALIDATION_START)
    except (InvalidSchedule, CroniterError):
        raise InvalidSchedule(
            f"cron expression {text!r} never fires (no date matches it)"
        ) from None
    return cron


def _zone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise InvalidSchedule(f"a schedule needs an IANA time zone name, not {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidSchedule(
            f"unknown time zone {name!r}; use an IANA name such as 'UTC' or 'Europe/Berlin'"
        ) from None


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"a timezone-aware datetime is needed, not {when!r}")
    return when.astimezone(UTC)
