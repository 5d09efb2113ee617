"""Type drift: which stored values fit a step's return annotation (zart.runtime.returns)."""

from __future__ import annotations

from typing import Any, Literal, Protocol, TypeVar

import pytest
from pydantic import BaseModel

from zart.errors import NonDeterministicReplay
from zart.runtime.returns import check_result

T = TypeVar("T")


class Quote(BaseModel):
    amount: int


class Priced(Protocol):
    amount: int


def returns_int() -> int: ...
def returns_float() -> float: ...
def returns_optional_quote() -> Quote | None: ...
def returns_list() -> list[int]: ...
def returns_literal() -> Literal["a", "b"]: ...
def returns_none() -> None: ...
def returns_any() -> Any: ...
def returns_typevar() -> T: ...  # type: ignore[type-var]
def returns_protocol() -> Priced: ...
def unannotated():  # type: ignore[no-untyped-def]
    ...


FITS = [
    (returns_int, 3),
    (returns_float, 3),
    (returns_float, 2.5),
    (returns_optional_quote, None),
    (returns_optional_quote, Quote(amount=1)),
    (returns_list, [1, 2]),
    (returns_literal, "a"),
    (returns_none, None),
    (returns_any, object()),
    (returns_typevar, "anything"),
    (returns_protocol, 1),
    (unannotated, 1),
]
DRIFTS = [
    (returns_int, "3", "builtins.str", "builtins.int"),
    (returns_optional_quote, 3, "builtins.int", "Quote | None"),
    (returns_list, (1, 2), "builtins.tuple", "list[int]"),
    (returns_literal, "c", "builtins.str", "Literal['a', 'b']"),
    (returns_none, 0, "builtins.int", "None"),
]


@pytest.mark.parametrize(("fn", "value"), FITS)
def test_a_stored_value_that_fits_passes(fn: Any, value: Any) -> None:
    check_result(fn, "a-step", 4, value)


@pytest.mark.parametrize(("fn", "value", "stored", "expected"), DRIFTS)
def test_a_stored_value_that_no_longer_fits_names_both_types(
    fn: Any, value: Any, stored: str, expected: str
) -> None:
    with pytest.raises(NonDeterministicReplay) as raised:
        check_result(fn, "a-step", 4, value)
    message = str(raised.value)
    assert message.startswith(f"step 'a-step' (position 4) has a stored result of type {stored}")
    assert expected in message
    assert (raised.value.step, raised.value.position) == ("a-step", 4)
