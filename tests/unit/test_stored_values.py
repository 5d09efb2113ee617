"""Values that cannot be stored are refused where they are encoded, naming their place; stored
rows decode without importing modules or rebuilding what could stop a worker (issue 13)."""

from __future__ import annotations

import asyncio
import json
import math
import sys
from typing import Any

import pytest
from pydantic import BaseModel

from zart.errors import LeaseLost, SerializationError, StoredError
from zart.runtime.runtime import CheckpointFailed
from zart.serialization import decode, decode_exception, encode, encode_exception, to_json

NON_FINITE = {
    "nan": math.nan,
    "inf": math.inf,
    "minus inf": -math.inf,
    "1e999999 read as JSON": json.loads("1e999999"),
}


class Reading(BaseModel):
    value: float
    label: str = ""


@pytest.mark.parametrize("number", NON_FINITE.values(), ids=NON_FINITE.keys())
@pytest.mark.parametrize("to_stored", [encode, to_json], ids=["typed", "plain"])
def test_non_finite_floats_are_refused_naming_their_place(to_stored: Any, number: float) -> None:
    with pytest.raises(SerializationError, match=r"^result\['items'\]\[3\]: cannot store nan"):
        to_stored({"items": [1, 2.5, "x", number]}, name="result")
    with pytest.raises(SerializationError, match=r"^result\.value: cannot store nan|^result"):
        to_stored(Reading(value=number), name="result")


@pytest.mark.parametrize("number", NON_FINITE.values(), ids=NON_FINITE.keys())
def test_plain_json_refuses_non_finite_floats_under_an_annotation(number: float) -> None:
    with pytest.raises(SerializationError, match=r"^payload\[1\]: cannot store nan"):
        to_json([1.0, number], list[float], name="payload")
    with pytest.raises(SerializationError, match="cannot store nan"):
        to_json(Reading(value=number), Reading, name="payload")


LONE_SURROGATE = "caf\ud800"


@pytest.mark.parametrize("to_stored", [encode, to_json], ids=["typed", "plain"])
@pytest.mark.parametrize(
    ("value", "place"),
    [
        (LONE_SURROGATE, "result"),
        ({"items": ["ok", LONE_SURROGATE]}, r"result\['items'\]\[1\]"),
        (Reading(value=1.0, label=LONE_SURROGATE), r"result(\.label|\['label'\])"),
    ],
)
def test_lone_surrogates_are_refused_naming_their_place(
    to_stored: Any, value: object, place: str
) -> None:
    with pytest.raises(SerializationError, match=f"^{place}: text containing a lone surrogate"):
        to_stored(value, name="result")


def test_a_lone_surrogate_in_a_dict_key_is_refused() -> None:
    with pytest.raises(SerializationError, match=r"^result\['caf\\ud800'\]: text contain"):
        encode({LONE_SURROGATE: 1}, name="result")
    with pytest.raises(SerializationError, match=r"^result\['caf\\ud800'\]: text contain"):
        to_json({LONE_SURROGATE: 1}, name="result")


def test_valid_non_ascii_text_is_stored() -> None:
    value = {"héllo ✓": ["日本", "🎉"]}
    assert encode(value) == value
    assert to_json(value) == value


def test_a_nan_tag_stored_earlier_still_reads_back() -> None:
    assert math.isnan(decode({"$zart": "float", "v": "nan"}))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "planted",
    [
        "builtins:SystemExit",
        "builtins:KeyboardInterrupt",
        "builtins:GeneratorExit",
        "asyncio.exceptions:CancelledError",
        "zart.errors:LeaseLost",
        "zart.runtime.runtime:CheckpointFailed",
        "zart.runtime.runtime:Suspended",
    ],
)
def test_stored_errors_that_would_steer_a_worker_come_back_as_stored_error(
    planted: str,
) -> None:
    stored = {"type": planted, "args": {"$zart": "tuple", "v": ["boom"]}, "message": "boom"}
    rebuilt = decode_exception(stored)  # type: ignore[arg-type]
    assert type(rebuilt) is StoredError
    assert rebuilt.type_name == planted
    assert isinstance(rebuilt, Exception)


def test_the_control_flow_types_are_what_the_planted_rows_name() -> None:
    assert issubclass(LeaseLost, Exception)
    assert issubclass(CheckpointFailed, Exception)
    assert not issubclass(asyncio.CancelledError, Exception)


def test_an_ordinary_exception_is_still_rebuilt() -> None:
    rebuilt = decode_exception(encode_exception(KeyError("sku")))
    assert type(rebuilt) is KeyError
    assert rebuilt.args == ("sku",)


def test_decoding_never_imports_a_module() -> None:
    assert "this" not in sys.modules  # importing it prints the Zen of Python
    with pytest.raises(SerializationError, match="'this' is not imported in this process"):
        decode({"$zart": "model", "type": "this:x", "v": {}})
    stored = {"type": "this:Error", "args": {"$zart": "tuple", "v": []}, "message": "m"}
    assert type(decode_exception(stored)) is StoredError  # type: ignore[arg-type]
    assert "this" not in sys.modules


def test_a_stored_value_nested_too_deeply_is_a_clear_error() -> None:
    data: Any = 1
    for _ in range(5000):
        data = {"$zart": "tuple", "v": [data]}
    with pytest.raises(SerializationError, match="nested too deeply"):
        decode(data)


def test_an_exception_message_with_nul_or_lone_surrogate_is_stored_escaped() -> None:
    stored = encode_exception(ValueError("bad \x00 and \ud800"))
    assert isinstance(stored, dict)
    text = json.dumps(stored, ensure_ascii=False)
    text.encode("utf-8")  # storable: no UnicodeEncodeError
    assert stored["message"] == "bad \\x00 and \\ud800"
    assert type(decode_exception(stored)) is StoredError  # the args could not be stored
