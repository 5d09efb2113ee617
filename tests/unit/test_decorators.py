"""@zart.step and @zart.durable check their configuration at import time."""

from __future__ import annotations

from typing import Any

import pytest

import zart


@pytest.mark.parametrize(
    "retry",
    [
        "fixd(3, 1s)",
        "fixed(3)",
        "fixed(-1, 1s)",
        "exponential(3, 2 parsecs)",
        "fixed(3, 1s, max=5s)",
    ],
)
def test_a_malformed_retry_string_is_refused_when_the_step_is_declared(retry: str) -> None:
    with pytest.raises(zart.ConfigurationError, match="invalid retry policy"):

        @zart.step("bad-retry", retry=retry)
        async def bad() -> None: ...


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": "soon"}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"timeout_scope": "forever"}, "timeout_scope"),
    ],
)
def test_bad_step_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(zart.ConfigurationError, match=message):
        zart.step("bad-options", **options)


def test_a_placeholder_must_name_a_parameter() -> None:
    with pytest.raises(zart.ConfigurationError, match=r"refers to \{idx\}"):

        @zart.step("report-{idx}")
        async def report(index: int) -> None: ...


def test_placeholders_are_filled_from_bound_arguments_and_defaults() -> None:
    @zart.step("ship-{order.id}-{carrier}")
    async def ship(order: Any, carrier: str = "ups") -> None: ...

    class Order:
        id = 42

    assert ship(Order()).name == "ship-42-ups"
    assert ship(order=Order(), carrier="dhl").name == "ship-42-dhl"
    assert ship(Order()).named("custom").name == "custom"


def test_every_way_of_passing_arguments_gives_the_same_name() -> None:
    @zart.step("fee-{region}-{amount}")
    async def fee(amount: int, region: str) -> None: ...

    @zart.step("tag-{label}")
    async def tag(label: str, *extra: str, **options: Any) -> None: ...

    # All positional (bound without inspect), by keyword, mixed: one name.
    assert fee(5, "eu").name == fee(amount=5, region="eu").name == fee(5, region="eu").name
    assert fee(5, "eu").name == "fee-eu-5"
    assert tag("a", "b", c=1).name == tag("a").name == "tag-a"
    with pytest.raises(TypeError):
        _ = fee(5).name  # a missing argument is the caller's error, as with bind()


def test_named_needs_a_name() -> None:
    @zart.step("plain")
    async def plain() -> None: ...

    with pytest.raises(zart.InvalidName, match="step name must not be empty"):
        plain().named("")


async def test_an_unawaited_step_call_runs_nothing() -> None:
    ran: list[int] = []

    @zart.step("side-effect")
    async def side_effect() -> None:
        ran.append(1)

    call = side_effect()
    call.close()
    assert ran == []


def test_two_handlers_cannot_share_a_task_name() -> None:
    @zart.durable("unit-shared-name")
    async def first(data: dict[str, Any]) -> None: ...

    with pytest.raises(zart.ConfigurationError, match="two durable handlers"):

        @zart.durable("unit-shared-name")
        async def second(data: dict[str, Any]) -> None: ...


def test_a_handler_must_be_async_and_take_at_most_one_input() -> None:
    with pytest.raises(zart.ConfigurationError, match="async"):

        @zart.durable("unit-sync-handler")
        def sync_handler(data: Any) -> None: ...

    with pytest.raises(zart.ConfigurationError, match="one input"):

        @zart.durable("unit-two-inputs")
        async def two_inputs(a: int, b: int) -> None: ...


def test_zart_step_on_a_call_takes_no_options() -> None:
    @zart.step("optionless")
    async def optionless() -> None: ...

    call = optionless()
    with pytest.raises(zart.ConfigurationError):
        zart.step(call, retry="fixed(1, 1s)")  # type: ignore[call-overload]
    call.close()


async def test_a_handler_is_callable_directly_for_unit_tests() -> None:
    @zart.step("double")
    async def double(n: int) -> int:
        return n * 2

    @zart.durable("unit-direct-call")
    async def handler(data: dict[str, int]) -> int:
        return await double(data["n"])

    assert await handler({"n": 21}) == 42
