"""Cron expressions, time zones and DST, and the catch-up decision: pure functions of ``now``."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

import zart
from zart.models import CatchupPolicy, OverlapPolicy
from zart.runtime.registry import find_handler, unregister
from zart.schedules.cron import Cron, parse_cron
from zart.schedules.plans import (
    MAX_CATCHUP,
    MISFIRE_GRACE,
    ScheduleSpec,
    check_name,
    execution_id_for,
    plan_firings,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def fire_times(cron: Cron, after: datetime, n: int) -> list[str]:
    """The next ``n`` fire times after ``after``, as local ISO strings (offset included)."""
    found = []
    for _ in range(n):
        after = cron.next_after(after)
        found.append(after.astimezone(cron.zone).isoformat())
    return found


# -- DST in Europe/Berlin: 2030-03-31 02:00 -> 03:00, 2030-10-27 03:00 -> 02:00 -------------


def test_a_daily_job_at_a_missing_local_time_fires_once_when_the_clock_jumps() -> None:
    cron = parse_cron("30 2 * * *", "Europe/Berlin")

    assert fire_times(cron, utc(2030, 3, 29), 4) == [
        "2030-03-29T02:30:00+01:00",
        "2030-03-30T02:30:00+01:00",
        "2030-03-31T03:00:00+02:00",  # 02:30 does not exist that day
        "2030-04-01T02:30:00+02:00",
    ]


def test_a_daily_job_in_the_repeated_hour_fires_once_at_its_first_occurrence() -> None:
    cron = parse_cron("30 2 * * *", "Europe/Berlin")

    assert fire_times(cron, utc(2030, 10, 25), 4) == [
        "2030-10-25T02:30:00+02:00",
        "2030-10-26T02:30:00+02:00",
        "2030-10-27T02:30:00+02:00",  # not again at 02:30+01:00
        "2030-10-28T02:30:00+01:00",
    ]


def test_a_daily_job_starting_inside_the_repeated_hour_waits_for_the_next_day() -> None:
    cron = parse_cron("30 2 * * *", "Europe/Berlin")
    second_pass = datetime(2030, 10, 27, 2, 10, fold=1, tzinfo=cron.zone)

    assert fire_times(cron, second_pass, 1) == ["2030-10-28T02:30:00+01:00"]


def test_an_every_30_minutes_job_keeps_real_intervals_across_fall_back() -> None:
    cron = parse_cron("*/30 * * * *", "Europe/Berlin")

    times = [cron.next_after(utc(2030, 10, 26, 23, 10))]
    for _ in range(5):
        times.append(cron.next_after(times[-1]))

    assert [t.astimezone(cron.zone).isoformat() for t in times] == [
        "2030-10-27T01:30:00+02:00",
        "2030-10-27T02:00:00+02:00",
        "2030-10-27T02:30:00+02:00",
        "2030-10-27T02:00:00+01:00",  # the repeated hour, second pass
        "2030-10-27T02:30:00+01:00",
        "2030-10-27T03:00:00+01:00",
    ]
    assert {b - a for a, b in itertools.pairwise(times)} == {timedelta(minutes=30)}


def test_an_every_15_minutes_job_skips_the_missing_hour_without_a_burst() -> None:
    cron = parse_cron("*/15 * * * *", "Europe/Berlin")

    assert fire_times(cron, utc(2030, 3, 31, 0, 40), 3) == [
        "2030-03-31T01:45:00+01:00",
        "2030-03-31T03:00:00+02:00",  # 02:00..02:45 do not exist: one firing, at the jump
        "2030-03-31T03:15:00+02:00",
    ]


def test_new_york_keeps_nine_in_the_morning_across_both_changes() -> None:
    cron = parse_cron("0 9 * * *", "America/New_York")

    march = [t[11:] for t in fire_times(cron, utc(2030, 3, 9), 3)]
    november = [t[11:] for t in fire_times(cron, utc(2030, 11, 2), 3)]

    assert march == ["09:00:00-05:00", "09:00:00-04:00", "09:00:00-04:00"]
    assert november == ["09:00:00-04:00", "09:00:00-05:00", "09:00:00-05:00"]


def test_a_half_hour_zone_fires_in_its_own_wall_time() -> None:
    cron = parse_cron("0 9 * * *", "Asia/Kolkata")

    assert cron.next_after(utc(2030, 1, 1)) == utc(2030, 1, 1, 3, 30)


def test_the_previous_fire_time_mirrors_the_next_one_across_fall_back() -> None:
    cron = parse_cron("*/30 * * * *", "Europe/Berlin")
    instant = utc(2030, 10, 26, 23, 0)
    while instant < utc(2030, 10, 27, 3, 0):
        following = cron.next_after(instant)
        assert cron.previous_before(following) <= instant < following
        instant = following


# -- expressions --------------------------------------------------------------------------


def test_six_fields_put_the_seconds_first() -> None:
    cron = parse_cron("*/20 * * * * *", "UTC")

    assert cron.with_seconds
    assert cron.next_after(utc(2030, 1, 1, 0, 0, 5)) == utc(2030, 1, 1, 0, 0, 20)
    assert cron.next_after(utc(2030, 1, 1, 0, 0, 40)) == utc(2030, 1, 1, 0, 1, 0)


def test_aliases_and_names_are_accepted() -> None:
    assert parse_cron("@daily").next_after(utc(2030, 1, 1, 5)) == utc(2030, 1, 2)
    assert parse_cron("0 9 * * MON-FRI").next_after(utc(2030, 1, 4, 10)) == utc(2030, 1, 7, 9)
    assert parse_cron("  0   9 * * *  ").expression == "0 9 * * *"


@pytest.mark.parametrize(
    ("expression", "timezone", "message"),
    [
        ("0 9 * *", "UTC", "has 4 fields"),
        ("0 0 9 * * * 2030", "UTC", "has 7 fields"),
        ("61 * * * *", "UTC", "invalid cron expression '61 * * * *'"),
        ("0 25 * * *", "UTC", "invalid cron expression"),
        ("0 9 * * funday", "UTC", "invalid cron expression"),
        ("@reboot", "UTC", "unknown cron alias '@reboot'"),
        ("", "UTC", "non-empty cron expression"),
        ("0 0 30 2 *", "UTC", "never fires"),
        ("0 9 * * *", "Mars/Olympus_Mons", "unknown time zone 'Mars/Olympus_Mons'"),
        ("0 9 * * *", "", "IANA time zone"),
        ("0 9 * * *", "CEST", "unknown time zone"),
    ],
)
def test_bad_expressions_and_zones_are_refused_clearly(
    expression: str, timezone: str, message: str
) -> None:
    with pytest.raises(zart.InvalidSchedule) as caught:
        parse_cron(expression, timezone)

    assert message in str(caught.value)
    assert isinstance(caught.value, zart.ConfigurationError)


def test_policies_are_validated_too() -> None:
    spec = ScheduleSpec.create("0 9 * * *", overlap="allow", catchup="all")

    assert (spec.overlap, spec.catchup) == (OverlapPolicy.ALLOW, CatchupPolicy.ALL)
    with pytest.raises(zart.InvalidSchedule, match="unknown overlap policy 'sometimes'"):
        ScheduleSpec.create("0 9 * * *", overlap="sometimes")
    with pytest.raises(zart.InvalidSchedule, match="unknown catchup policy 'most'"):
        ScheduleSpec.create("0 9 * * *", catchup="most")


def test_names_must_fit_the_execution_id() -> None:
    assert check_name("nightly") == "nightly"
    with pytest.raises(zart.InvalidSchedule, match="must not be empty"):
        check_name(" ")
    with pytest.raises(zart.InvalidSchedule, match="201 characters long; at most 200 fit"):
        check_name("x" * 201)
    assert len(execution_id_for("x" * 200, utc(2030, 1, 1, 0, 0, 0))) <= 255


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("a\x00b", "contains a NUL character"),
        ("caf\ud800", "contains a lone surrogate"),
        ("reports/daily", "contains '/'"),
        (7, "must be a string, not int"),
    ],
    ids=["NUL", "lone surrogate", "slash", "not a string"],
)
def test_names_obey_the_rule_of_every_name_and_id(name: object, problem: str) -> None:
    # the same zart.models.names rule as the execution ids the schedule's firings get
    with pytest.raises(zart.InvalidSchedule, match=rf"^schedule name .*{problem}"):
        check_name(name)


def test_the_execution_id_names_the_schedule_and_the_utc_fire_time() -> None:
    berlin_nine = datetime(2030, 7, 1, 9, tzinfo=parse_cron("0 9 * * *", "Europe/Berlin").zone)

    assert execution_id_for("report", berlin_nine) == "report@2030-07-01T07:00:00Z"


# -- catch-up -----------------------------------------------------------------------------

HOURLY = parse_cron("0 * * * *")


def test_nothing_fires_before_the_next_fire_time() -> None:
    plan = plan_firings(
        HOURLY, CatchupPolicy.ALL, next_fire_at=utc(2030, 1, 1, 10), now=utc(2030, 1, 1, 9, 59)
    )

    assert plan.fire_times == ()
    assert plan.next_fire_at == utc(2030, 1, 1, 10)


@pytest.mark.parametrize("policy", list(CatchupPolicy))
def test_a_slightly_late_tick_fires_the_due_time_under_every_policy(
    policy: CatchupPolicy,
) -> None:
    plan = plan_firings(
        HOURLY, policy, next_fire_at=utc(2030, 1, 1, 10), now=utc(2030, 1, 1, 10, 0, 2)
    )

    assert plan.fire_times == (utc(2030, 1, 1, 10),)
    assert plan.dropped_from is None
    assert plan.next_fire_at == utc(2030, 1, 1, 11)


def test_skip_drops_missed_times_after_downtime() -> None:
    plan = plan_firings(
        HOURLY, CatchupPolicy.SKIP, next_fire_at=utc(2030, 1, 1, 10), now=utc(2030, 1, 1, 13, 5)
    )

    assert plan.fire_times == ()
    assert plan.dropped_from == utc(2030, 1, 1, 10)
    assert plan.next_fire_at == utc(2030, 1, 1, 14)


def test_skip_still_fires_a_time_within_the_grace() -> None:
    now = utc(2030, 1, 1, 13) + MISFIRE_GRACE
    plan = plan_firings(HOURLY, CatchupPolicy.SKIP, next_fire_at=utc(2030, 1, 1, 10), now=now)

    assert plan.fire_times == (utc(2030, 1, 1, 13),)
    assert plan.dropped_from == utc(2030, 1, 1, 10)


def test_latest_fires_the_latest_missed_time_once() -> None:
    plan = plan_firings(
        HOURLY, CatchupPolicy.LATEST, next_fire_at=utc(2030, 1, 1, 10), now=utc(2030, 1, 1, 13, 5)
    )

    assert plan.fire_times == (utc(2030, 1, 1, 13),)
    assert plan.dropped_from == utc(2030, 1, 1, 10)
    assert plan.next_fire_at == utc(2030, 1, 1, 14)


def test_all_fires_every_missed_time_oldest_first() -> None:
    plan = plan_firings(
        HOURLY, CatchupPolicy.ALL, next_fire_at=utc(2030, 1, 1, 10), now=utc(2030, 1, 1, 13, 5)
    )

    assert plan.fire_times == tuple(utc(2030, 1, 1, h) for h in (10, 11, 12, 13))
    assert plan.dropped_from is None


def test_all_is_capped_at_the_latest_max_catchup_times() -> None:
    minutely = parse_cron("* * * * *")
    start = utc(2030, 1, 1)
    now = start + timedelta(minutes=MAX_CATCHUP + 49, seconds=30)

    plan = plan_firings(minutely, CatchupPolicy.ALL, next_fire_at=start, now=now)

    assert len(plan.fire_times) == MAX_CATCHUP
    assert plan.fire_times[-1] == start + timedelta(minutes=MAX_CATCHUP + 49)
    assert plan.fire_times[0] == start + timedelta(minutes=50)
    assert plan.dropped_from == start


# -- declared on a handler ------------------------------------------------------------------


def test_a_bad_declared_schedule_fails_at_import_time_and_registers_nothing() -> None:
    with pytest.raises(zart.InvalidSchedule, match="unknown time zone 'Europe/Atlantis'"):

        @zart.durable("cron-unit-bad-zone", schedule="0 9 * * *", timezone="Europe/Atlantis")
        async def bad_zone() -> None: ...

    with pytest.raises(zart.InvalidSchedule, match="has 3 fields"):

        @zart.durable("cron-unit-bad-cron", schedule="0 9 *")
        async def bad_cron() -> None: ...

    assert find_handler("cron-unit-bad-zone") is None
    assert find_handler("cron-unit-bad-cron") is None


def test_a_declared_schedule_is_kept_on_the_handler() -> None:
    try:

        @zart.durable(
            "cron-unit-good", schedule="0 9 * * *", timezone="Europe/Berlin", overlap="allow"
        )
        async def good() -> None: ...

    finally:
        unregister("cron-unit-good")  # or every later worker would store and fire it

    assert good.schedule is not None
    assert good.schedule.cron.expression == "0 9 * * *"
    assert good.schedule.cron.timezone == "Europe/Berlin"
    assert good.schedule.overlap is OverlapPolicy.ALLOW
    assert good.schedule.catchup is CatchupPolicy.LATEST


def test_a_declared_schedule_needs_a_handler_without_input() -> None:
    with pytest.raises(zart.ConfigurationError, match="takes an input"):

        @zart.durable("cron-unit-with-input", schedule="0 9 * * *")
        async def with_input(data: dict[str, int]) -> None: ...

    assert find_handler("cron-unit-with-input") is None
