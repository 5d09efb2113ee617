"""The name rules (zart.models.names) and the edges that apply them at decoration time."""

from __future__ import annotations

import pytest

import zart
from zart.errors import ConfigurationError, InvalidName, InvalidPayload
from zart.models.names import MAX_LENGTH, check_name
from zart.models.tables import ExecutionRow


def test_the_limit_is_the_columns_length() -> None:
    assert ExecutionRow.__table__.c.execution_id.type.length == MAX_LENGTH  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        (42, "must be a string, not int"),
        ("x" * (MAX_LENGTH + 1), f"is {MAX_LENGTH + 1} characters long; at most {MAX_LENGTH}"),
        ("a\x00b", "contains a NUL character"),
        ("caf\ud800", "contains a lone surrogate"),
    ],
    ids=["empty", "blank", "not a string", "too long", "NUL", "lone surrogate"],
)
def test_a_bad_name_is_refused_naming_what_and_why(value: object, problem: str) -> None:
    with pytest.raises(InvalidName, match=f"^execution id.*{problem}"):
        check_name(value, "execution id")


def test_invalid_name_is_an_invalid_payload_and_a_value_error() -> None:
    assert issubclass(InvalidName, InvalidPayload)
    assert issubclass(InvalidName, ValueError)


def test_good_names_pass_unchanged() -> None:
    for value in ("x" * MAX_LENGTH, "commande-été-✓", "a/b:c@d"):
        assert check_name(value, "task name") == value


def test_an_unknown_conversion_in_a_step_name_is_refused_at_decoration() -> None:
    with pytest.raises(ConfigurationError, match=r"uses the conversion !x in \{sku\}"):

        @zart.step("x-{sku!x}")
        async def reserve(sku: str) -> None: ...


def test_known_conversions_are_accepted() -> None:
    @zart.step("x-{sku!r}-{sku!s}-{sku!a}")
    async def reserve(sku: str) -> None: ...

    assert reserve.definition.resolve_name(("a",), {}) == "x-'a'-a-'a'"


@pytest.mark.parametrize("name", ["x" * (MAX_LENGTH + 1), "step\x00", "step\ud800"])
def test_a_fixed_step_name_that_cannot_be_stored_is_refused_at_decoration(name: str) -> None:
    with pytest.raises(InvalidName, match=r"^step name"):

        @zart.step(name)
        async def fixed() -> None: ...


@pytest.mark.parametrize("name", ["x" * (MAX_LENGTH + 1), "task\x00", "task\ud800"])
def test_a_task_name_that_cannot_be_stored_is_refused_at_decoration(name: str) -> None:
    with pytest.raises(InvalidName, match=r"^task name"):
        zart.durable(name)


def test_named_refuses_a_name_that_cannot_be_stored() -> None:
    @zart.step("fixed")
    async def fixed() -> None: ...

    with pytest.raises(InvalidName, match=r"^step name"):
        fixed().named("n\x00")
