"""Durations and retry policies as written in decorators and configuration."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from zart.durations import RetryPolicy, format_duration, parse_duration, parse_retry
from zart.errors import ConfigurationError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(minutes=3), timedelta(minutes=3)),
        (timedelta(0), timedelta(0)),
        (0, timedelta(0)),
        (5, timedelta(seconds=5)),
        (2.5, timedelta(seconds=2.5)),
        (0.0001, timedelta(microseconds=100)),
        ("250ms", timedelta(milliseconds=250)),
        ("2s", timedelta(seconds=2)),
        ("1.5s", timedelta(seconds=1.5)),
        (".5s", timedelta(milliseconds=500)),
        ("0s", timedelta(0)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("1d", timedelta(days=1)),
        ("36h", timedelta(hours=36)),
        ("0.25d", timedelta(hours=6)),
        ("  30s\n", timedelta(seconds=30)),
        ("007s", timedelta(seconds=7)),
        # No unit: seconds, as a number is ("0" from an environment variable, issue #21).
        ("0", timedelta(0)),
        ("5", timedelta(seconds=5)),
        ("1.5", timedelta(seconds=1.5)),
    ],
)
def test_accepted_durations(value: Any, expected: timedelta) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "s",
        "-1s",
        "+1s",
        "1.s",
        "1 s",
        "1S",
        "5M",
        "1w",
        "1y",
        "1sec",
        "1h30m",
        "1e3s",
        "nan s",
        "abc",
        "1_000s",
        -1,
        -0.5,
        float("nan"),
        float("inf"),
        True,
        False,
        None,
        [1],
        timedelta(seconds=-1),
        1e20,
        "999999999999d",
    ],
)
def test_rejected_durations(value: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_duration(value, name="timeout")
    message = str(caught.value)
    assert message.startswith(f"invalid timeout {value!r}")
    assert "'250ms'" in message
    assert "'1d'" in message


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(days=2), "2d"),
        (timedelta(hours=3), "3h"),
        (timedelta(minutes=90), "90m"),
        (timedelta(seconds=45), "45s"),
        (timedelta(seconds=1.5), "1500ms"),
        (timedelta(microseconds=1500), "1.500ms"),
        (timedelta(0), "0s"),
    ],
)
def test_format_duration_reads_back(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fixed(3, 1s)", RetryPolicy(3, timedelta(seconds=1), "fixed")),
        ("fixed(0, 0s)", RetryPolicy(0, timedelta(0), "fixed")),
        ("  fixed ( 2 ,250ms )  ", RetryPolicy(2, timedelta(milliseconds=250), "fixed")),
        ("exponential(3, 2s)", RetryPolicy(3, timedelta(seconds=2), "exponential")),
        (
            "exponential(5, 1s, max=30s)",
            RetryPolicy(5, timedelta(seconds=1), "exponential", timedelta(seconds=30)),
        ),
        (
            "exponential(5,1s,max = 1m)",
            RetryPolicy(5, timedelta(seconds=1), "exponential", timedelta(minutes=1)),
        ),
        (
            "exponential(1, 2s, max=2s)",
            RetryPolicy(1, timedelta(seconds=2), "exponential", timedelta(seconds=2)),
        ),
        ("fixed(10, 1.5h)", RetryPolicy(10, timedelta(hours=1.5), "fixed")),
    ],
)
def test_accepted_retry_policies(text: str, expected: RetryPolicy) -> None:
    policy = parse_retry(text)
    assert policy == expected
    assert parse_retry(str(policy)) == policy


def test_parse_retry_passes_policies_and_none() -> None:
    policy = RetryPolicy(1, timedelta(seconds=1), "fixed")
    assert parse_retry(policy) is policy
    assert parse_retry(None) is RetryPolicy.NONE
    assert RetryPolicy.NONE.max_retries == 0
    assert RetryPolicy.NONE.allows(0)
    assert not RetryPolicy.NONE.allows(1)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("fixd(3, 1s)", "unknown kind 'fixd'"),
        ("linear(3, 1s)", "unknown kind 'linear'"),
        ("fixed", "not of the form"),
        ("fixed 3, 1s", "not of the form"),
        ("fixed(3, 1s", "not of the form"),
        ("fixed()", "takes 2 arguments, got 1"),
        ("fixed(3)", "takes 2 arguments, got 1"),
        ("exponential(3)", "takes 2 or 3 arguments, got 1"),
        ("fixed(3, 1s, 2s)", "takes 2 arguments, got 3"),
        ("exponential(3, 1s, 2s, 3s)", "takes 2 or 3 arguments, got 4"),
        ("fixed(-1, 1s)", "N must be a whole number >= 0, not '-1'"),
        ("fixed(1.5, 1s)", "N must be a whole number"),
        ("fixed(three, 1s)", "N must be a whole number"),
        ("fixed(, 1s)", "N must be a whole number"),
        ("fixed(3, )", "a DELAY is missing"),
        ("fixed(3, 1x)", "'1x' is not a duration"),
        ("fixed(3, -1s)", "'-1s' is not a duration"),
        ("fixed(3, 1xs)", "'1xs' is not a duration"),
        ("fixed(3, 1s, max=5s)", "max= only applies to exponential"),
        ("exponential(3, 1s, cap=5s)", "the third argument must be max=DELAY"),
        ("exponential(3, 1s, max=)", "a DELAY is missing"),
        ("exponential(3, 10s, max=5s)", "smaller than the delay"),
        ("", "not of the form"),
        ("FIXED(3, 1s)", "unknown kind 'FIXED'"),
    ],
)
def test_malformed_retry_policies(text: str, reason: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_retry(text)
    message = str(caught.value)
    assert message.startswith(f"invalid retry policy {text!r}: ")
    assert reason in message
    assert (
        "expected fixed(N, DELAY), exponential(N, DELAY) or exponential(N, DELAY, max=DELAY)"
        in message
    )


def test_parse_retry_refuses_other_types() -> None:
    with pytest.raises(ConfigurationError, match="invalid retry policy 3"):
        parse_retry(3)  # type: ignore[arg-type]


def test_fixed_delay_and_allowed_attempts() -> None:
    policy = parse_retry("fixed(2, 1s)")
    assert [policy.allows(attempt) for attempt in range(4)] == [True, True, True, False]
    assert [policy.delay_before(attempt) for attempt in (1, 2)] == [timedelta(seconds=1)] * 2


def test_exponential_delay_doubles() -> None:
    policy = parse_retry("exponential(4, 2s)")
    assert [policy.delay_before(attempt).total_seconds() for attempt in range(1, 5)] == [
        2,
        4,
        8,
        16,
    ]


def test_exponential_delay_is_capped() -> None:
    policy = parse_retry("exponential(10, 1s, max=5s)")
    delays = [policy.delay_before(attempt).total_seconds() for attempt in range(1, 6)]
    assert delays == [1, 2, 4, 5, 5]
    assert policy.delay_before(10_000) == timedelta(seconds=5)


def test_exponential_delay_without_cap_never_overflows() -> None:
    policy = parse_retry("exponential(1000, 1d)")
    assert policy.delay_before(60) == timedelta.max
    assert policy.delay_before(1000) == timedelta.max
    assert parse_retry("exponential(1000, 0s)").delay_before(1000) == timedelta(0)


def test_delay_before_the_first_try_is_an_error() -> None:
    with pytest.raises(ValueError, match="retries are numbered from 1"):
        parse_retry("fixed(1, 1s)").delay_before(0)


@pytest.mark.parametrize(
    "arguments",
    [
        {"max_retries": -1, "delay": timedelta(0), "backoff": "fixed"},
        {"max_retries": True, "delay": timedelta(0), "backoff": "fixed"},
        {"max_retries": 1.0, "delay": timedelta(0), "backoff": "fixed"},
        {"max_retries": 1, "delay": timedelta(seconds=-1), "backoff": "fixed"},
        {"max_retries": 1, "delay": timedelta(0), "backoff": "linear"},
        {
            "max_retries": 1,
            "delay": timedelta(seconds=1),
            "backoff": "fixed",
            "max_delay": timedelta(seconds=2),
        },
        {
            "max_retries": 1,
            "delay": timedelta(seconds=2),
            "backoff": "exponential",
            "max_delay": timedelta(seconds=1),
        },
    ],
)
def test_policy_checks_its_fields(arguments: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**arguments)


def test_policy_is_frozen_and_hashable() -> None:
    policy = parse_retry("exponential(3, 2s, max=1m)")
    assert str(policy) == "exponential(3, 2s, max=1m)"
    assert hash(policy) == hash(parse_retry("exponential(3,2s,max=60s)"))
    with pytest.raises(AttributeError):
        policy.max_retries = 5  # type: ignore[misc]
