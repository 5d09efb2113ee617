"""Typed replay (encode/decode), plain JSON (to_json/from_json), stored errors and size checks.

The classes used in round trips live at module level so that they import back as
``tests.unit.test_serialization:Name``, as a real application's classes would.
"""

from __future__ import annotations

import dataclasses
import json
import math
import socket
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum, IntEnum, IntFlag, StrEnum
from typing import Annotated, Any, Generic, NamedTuple, TypeVar
from uuid import UUID

import pytest
from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass
from typing_extensions import TypedDict

from zart.errors import ConfigurationError, SerializationError, StoredError
from zart.serialization import (
    TAG,
    JSONValue,
    check_size,
    decode,
    decode_exception,
    encode,
    encode_exception,
    from_json,
    to_json,
)

UUID_A = UUID("6f1c2a9e-0d7b-4c43-9d0e-1f2a3b4c5d6e")
UUID_B = UUID("00000000-0000-4000-8000-000000000001")


class Color(Enum):
    RED = "red"
    BLUE = "blue"


class Level(IntEnum):
    LOW = 1
    HIGH = 2


class Mode(StrEnum):
    READ = "read"
    WRITE = "write"


class Permission(IntFlag):
    READ = 1
    WRITE = 2


class Shape(Enum):
    SQUARE = (4, "sides")


class Point(NamedTuple):
    x: int
    y: int = 0


@dataclass
class Address:
    city: str
    zip_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class FrozenTag:
    name: str
    at: datetime


@dataclass(slots=True)
class SlotsBox:
    content: Any


@dataclass
class Counter:
    name: str
    hits: int = field(init=False, default=0)
    label: str = field(init=False)

    def __post_init__(self) -> None:
        self.label = self.name.upper()


@dataclass
class Batch:
    index: dict[str, list[tuple[UUID, ...]]]


@pydantic_dataclass
class Measured:
    value: Decimal
    unit: str


class User(BaseModel):
    id: UUID
    email: str
    anything: Any = None
    address: Address | None = None
    born: date | None = None


class Team(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    members: list[User]
    lead: User | None = None
    roles: dict[str, Level] = {}


class Aliased(BaseModel):
    full_name: str = Field(alias="fullName")


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")

    known: int


class Tags(RootModel[list[tuple[str, int]]]):
    pass


ItemT = TypeVar("ItemT")


class Box(BaseModel, Generic[ItemT]):
    item: ItemT


IntBox = Box[int]  # parametrized at module level, so pydantic makes "Box[int]" importable


class Outer:
    class Inner(BaseModel):
        value: tuple[int, ...]


class CustomError(Exception):
    pass


class CodedError(Exception):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


class ReshapingError(Exception):
    """Its constructor formats the message, so ``cls(*exc.args)`` is not the same error."""

    def __init__(self, code: int) -> None:
        super().__init__(f"failed with code {code}")
        self.code = code


def assert_same(expected: Any, actual: Any, path: str = "value") -> None:
    """Assert equal values of the very same type at every level (nan equals nan here)."""
    assert type(actual) is type(expected), f"{path}: {type(actual)!r} != {type(expected)!r}"
    parts = _parts(expected, actual, path)
    if parts is not None:
        for sub_expected, sub_actual, sub_path in parts:
            assert_same(sub_expected, sub_actual, sub_path)
    elif isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(actual), path
    else:
        assert actual == expected, path
        if isinstance(expected, float):
            assert math.copysign(1, actual) == math.copysign(1, expected), f"{path}: sign"
        if isinstance(expected, datetime | time):
            assert actual.utcoffset() == expected.utcoffset(), f"{path}: offset"


def _parts(expected: Any, actual: Any, path: str) -> list[tuple[Any, Any, str]] | None:
    """The pairs of children to compare, or None for a leaf."""
    if isinstance(expected, dict):
        assert len(actual) == len(expected), path
        pairs = zip(expected.items(), actual.items(), strict=True)
        return [
            part
            for (key, item), (actual_key, actual_item) in pairs
            for part in ((key, actual_key, f"{path} key"), (item, actual_item, f"{path}[{key!r}]"))
        ]
    if isinstance(expected, list | tuple):
        assert len(actual) == len(expected), path
        pairs = zip(expected, actual, strict=True)
        return [(item, other, f"{path}[{index}]") for index, (item, other) in enumerate(pairs)]
    if isinstance(expected, set | frozenset):
        assert actual == expected, path
        by_value = {item: item for item in actual}
        return [(item, by_value[item], f"{path}{{{item!r}}}") for item in expected]
    if isinstance(expected, BaseModel):
        assert actual.__pydantic_extra__ == expected.__pydantic_extra__, path
        names: list[str] = list(type(expected).model_fields)
    elif dataclasses.is_dataclass(expected):
        names = [item.name for item in dataclasses.fields(expected)]
    else:
        return None
    return [(getattr(expected, name), getattr(actual, name), f"{path}.{name}") for name in names]


@pytest.mark.parametrize(
    ("expected", "actual"),
    [((1,), [1]), ({"a": 1.0}, {"a": 1}), ([-0.0], [0.0]), ({1: "x"}, {True: "x"}),
     (Point(1, 2), (1, 2))],
)  # fmt: skip
def test_assert_same_sees_type_differences(expected: object, actual: object) -> None:
    with pytest.raises(AssertionError):
        assert_same(expected, actual)


def round_trip(value: object) -> object:
    """What replay gives back after the value went through the database as JSON text."""
    text = json.dumps(encode(value), allow_nan=False)
    return decode(json.loads(text))


def contains_tag(data: object) -> bool:
    if isinstance(data, dict):
        return TAG in data or any(contains_tag(item) for item in data.values())
    if isinstance(data, list):
        return any(contains_tag(item) for item in data)
    return False


USER = User(
    id=UUID_A,
    email="a@b.c",
    anything=(1, "two", (3.5, None)),
    address=Address("Lyon", ("69001", "69002")),
    born=date(1990, 5, 17),
)

VALUES: dict[str, object] = {
    "none": None,
    "true": True,
    "int": 42,
    "huge int": 2**100,
    "negative huge int": -(3**90),
    "float": 1.5,
    "negative zero": -0.0,
    "float printed with exponent": 1e16,
    "large float": -1.5e300,
    "tiny float": 1e-300,
    "str": "héllo ✓",
    "empty str": "",
    "list": [1, "a", None, [2.5]],
    "empty list": [],
    "dict": {"a": 1, "b": {"c": [True]}},
    "empty dict": {},
    "tuple": (1, "a", None),
    "empty tuple": (),
    "nested tuple": ((1, 2), [3, (4,)]),
    "set": {3, 1, 2},
    "mixed set": {1, "a", (2, 3)},
    "empty set": set(),
    "frozenset": frozenset({"x", "y"}),
    "naive datetime": datetime(2026, 1, 1, 12, 30, 15, 123456),
    "utc datetime": datetime(2026, 1, 1, tzinfo=UTC),
    "offset datetime": datetime(
        2026, 6, 1, 8, 0, tzinfo=timezone(timedelta(hours=-5, minutes=-30))
    ),
    "date": date(2026, 2, 28),
    "time": time(23, 59, 59, 999999),
    "aware time": time(7, 0, tzinfo=timezone(timedelta(hours=2))),
    "timedelta": timedelta(days=3, seconds=7, microseconds=11),
    "negative timedelta": timedelta(microseconds=-1),
    "uuid": UUID_A,
    "decimal": Decimal("1234.5600"),
    "decimal exponent": Decimal("-1E+3"),
    "bytes": b"\x00\xffbinary",
    "empty bytes": b"",
    "bytearray": bytearray(b"\x01\x02"),
    "enum": Color.BLUE,
    "int enum": Level.HIGH,
    "str enum": Mode.WRITE,
    "int flag": Permission.READ | Permission.WRITE,
    "enum with tuple value": Shape.SQUARE,
    "named tuple": Point(1, 2),
    "model": USER,
    "model with nested models": Team(
        name="core", members=[USER], lead=USER, roles={"a": Level.LOW}
    ),
    "model with alias": Aliased(fullName="Ada Lovelace"),
    "model with extra fields": Loose(known=1, unknown=(1, 2)),
    "nested class": Outer.Inner(value=(1, 2, 3)),
    "root model": Tags([("a", 1)]),
    "generic model": Box(item=(1, UUID_A)),
    "parametrized generic model": IntBox(item=3),
    "dataclass": Address("Paris", ("75001",)),
    "frozen dataclass": FrozenTag("t", datetime(2026, 1, 1, tzinfo=UTC)),
    "slots dataclass": SlotsBox(content={"k": (UUID_B,)}),
    "pydantic dataclass": Measured(value=Decimal("2.50"), unit="kg"),
    "dataclass with tuples of uuids in a dict": Batch(index={"a": [(UUID_A, UUID_B)], "b": []}),
    "dict with $zart key": {TAG: "tuple", "v": [1, 2]},
    "dict with int keys": {1: "one", 2: "two"},
    "dict with tuple keys": {(1, 2): "pair", (): "empty"},
    "dict with mixed keys": {"a": 1, 2: "b", None: None, True: False},
    "dict with uuid, enum and date keys": {UUID_A: 1, Color.RED: 2, date(2026, 1, 1): 3},
    "dict with frozenset key": {frozenset({1}): "x"},
}


@pytest.mark.parametrize("value", list(VALUES.values()), ids=list(VALUES))
def test_round_trip_at_top_level(value: object) -> None:
    assert_same(value, round_trip(value))


@pytest.mark.parametrize("value", list(VALUES.values()), ids=list(VALUES))
def test_round_trip_nested(value: object) -> None:
    nested = [{"outer": (value, {"inner": [value]}), 7: SlotsBox(content=value)}]
    assert_same(nested, round_trip(nested))


def test_round_trip_without_json_text() -> None:
    value = {"when": datetime(2026, 1, 1), "ids": (UUID_A,)}
    assert_same(value, decode(encode(value)))


def test_model_field_typed_any_keeps_its_tuple() -> None:
    back = round_trip(USER)
    assert isinstance(back, User)
    assert type(back.anything) is tuple
    assert type(back.anything[2]) is tuple
    assert type(back.address) is Address


def test_dataclass_init_false_fields_are_restored() -> None:
    counter = Counter("visits")
    counter.hits = 5
    back = round_trip(counter)
    assert isinstance(back, Counter)
    assert (back.name, back.hits, back.label) == ("visits", 5, "VISITS")


def test_zoneinfo_datetime_keeps_its_zone_and_fold() -> None:
    zoneinfo = pytest.importorskip("zoneinfo")
    try:
        paris = zoneinfo.ZoneInfo("Europe/Paris")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no time zone database")
    # 02:30 happens twice on 2026-10-25 in Paris; fold=1 is the second (UTC+1) one.
    for value in (
        datetime(2026, 7, 1, 9, 0, tzinfo=paris),
        datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=paris),
    ):
        back = round_trip(value)
        assert isinstance(back, datetime)
        assert back == value
        assert back.tzinfo is paris
        assert back.utcoffset() == value.utcoffset()


def test_other_tzinfo_comes_back_as_a_fixed_offset() -> None:
    named = timezone(timedelta(hours=1), "CET")
    value = datetime(2026, 1, 1, tzinfo=named)
    back = round_trip(value)
    assert back == value
    assert isinstance(back, datetime)
    assert back.utcoffset() == timedelta(hours=1)


PLAIN: list[object] = [
    None,
    True,
    0,
    -7,
    2**70,
    1.25,
    0.0,
    -3.5e-10,
    "text",
    [],
    {},
    [1, [2, [3]], {"a": None}],
    {"id": 1, "email": "a@b.c", "ok": True, "tags": ["x", "y"], "score": 0.5},
]


@pytest.mark.parametrize("value", PLAIN)
def test_plain_json_is_stored_as_itself(value: object) -> None:
    data = encode(value)
    assert data == value
    assert_same(value, data)
    assert not contains_tag(data)
    assert_same(value, decode(data))


def test_encode_copies_containers() -> None:
    value = {"a": [1, 2]}
    data = encode(value)
    assert isinstance(data, dict)
    assert data is not value
    assert data["a"] is not value["a"]


def test_tags_look_like_the_documented_format() -> None:
    assert encode(datetime(2026, 1, 1, tzinfo=UTC)) == {
        TAG: "datetime",
        "v": "2026-01-01T00:00:00+00:00",
    }
    assert encode((1, 2)) == {TAG: "tuple", "v": [1, 2]}
    assert encode(Outer.Inner(value=(1,))) == {
        TAG: "model",
        "type": "tests.unit.test_serialization:Outer.Inner",
        "v": {"value": {TAG: "tuple", "v": [1]}},
    }
    assert encode({TAG: 1}) == {TAG: "dict", "v": [[TAG, 1]]}


def test_equal_sets_give_equal_json() -> None:
    assert encode({"b", "a", "c"}) == encode({"c", "a", "b"}) == {TAG: "set", "v": ["a", "b", "c"]}


# --------------------------------------------------------------------------- encode errors


@dataclass
class Holder:
    items: list[Any]


def test_local_class_is_refused_before_writing() -> None:
    @dataclass
    class Local:
        x: int

    with pytest.raises(SerializationError, match=r"Local.*defined inside a function"):
        encode({"result": [Local(1)]})


def test_local_enum_and_model_are_refused() -> None:
    class LocalModel(BaseModel):
        x: int

    class LocalEnum(Enum):
        A = 1

    for value in (LocalModel(x=1), LocalEnum.A):
        with pytest.raises(SerializationError, match="defined inside a function"):
            encode(value)


def test_unsupported_object_names_type_and_path() -> None:
    with socket.socket() as sock:
        value = {"items": [1, 2, sock]}
        with pytest.raises(SerializationError) as caught:
            encode(value, name="result")
    assert str(caught.value).startswith("result['items'][2]: cannot store a value of type socket")


@pytest.mark.parametrize(
    ("value", "path"),
    [
        (object(), "value: "),
        ([0, (1, object())], "value[1][1]: "),
        ({1: {"k": object()}}, "value[1]['k']: "),
        (Holder(items=[None, object()]), "value.items[1]: "),
        (Team(name="t", members=[User(id=UUID_A, email="e", anything=[object()])]),
         "value.members[0].anything[0]: "),
        ({object(): 1}, "value[<object object at"),
        ({1, frozenset({object()})}, "value[*][*]: "),
    ],
)  # fmt: skip
def test_unsupported_object_path(value: object, path: str) -> None:
    with pytest.raises(SerializationError) as caught:
        encode(value)
    assert str(caught.value).startswith(path)
    assert "cannot store a value of type object" in str(caught.value)


def test_subclass_of_a_json_type_is_refused_with_a_hint() -> None:
    class Text(str):
        pass

    with pytest.raises(SerializationError, match="subclass of str"):
        encode([Text("x")])


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("a\x00b", "value: "),
        ({"k": ["ok", "bad\x00"]}, "value['k'][1]: "),
        ({"bad\x00key": 1}, "value['bad\\x00key']: "),
        ({1: "x\x00"}, "value[1]: "),
        (("ok", "\x00"), "value[1]: "),
        (User(id=UUID_A, email="\x00"), "value.email: "),
        ({"\x00"}, "value[*]: "),
    ],
)
def test_text_with_nul_is_refused(value: object, path: str) -> None:
    with pytest.raises(SerializationError) as caught:
        encode(value)
    assert str(caught.value).startswith(path)
    assert "text containing a NUL character" in str(caught.value)


def test_bytes_may_contain_nul() -> None:
    assert round_trip(b"\x00\x00") == b"\x00\x00"


def test_cycle_is_refused() -> None:
    cycle: list[object] = []
    cycle.append(cycle)
    with pytest.raises(SerializationError, match="contains itself"):
        encode(cycle)


# --------------------------------------------------------------------------- decode errors


MODULE = "tests.unit.test_serialization"


@pytest.mark.parametrize(
    "data",
    [
        {TAG: "no-such-kind", "v": 1},
        {TAG: 5},
        {TAG: ["tuple"]},
        {TAG: "tuple"},
        {TAG: "tuple", "v": "not a list"},
        {TAG: "dict", "v": [[1]]},
        {TAG: "dict", "v": {"a": 1}},
        {TAG: "float", "v": "abc"},
        {TAG: "float", "v": 1.0},
        {TAG: "datetime", "v": "yesterday"},
        {TAG: "datetime", "v": "2026-01-01T00:00:00+00:00", "tz": 3},
        {TAG: "time", "v": "25:00"},
        {TAG: "date", "v": None},
        {TAG: "timedelta", "v": [1, 2]},
        {TAG: "timedelta", "v": [1, 2, "3"]},
        {TAG: "uuid", "v": "zz"},
        {TAG: "decimal", "v": "1,5"},
        {TAG: "bytes", "v": "!!!"},
        {TAG: "enum", "type": f"{MODULE}:Color", "v": "green"},
        {TAG: "enum", "type": f"{MODULE}:Color"},
        {TAG: "enum", "type": "os:getcwd", "v": 1},
        {TAG: "model", "type": f"{MODULE}:User", "v": {"email": "no id"}},
        {TAG: "model", "type": f"{MODULE}:User"},
        {TAG: "model", "type": f"{MODULE}:Tags", "v": {"items": []}},
        {TAG: "model", "type": f"{MODULE}:Address", "v": {"city": "x"}},
        {TAG: "model", "type": "no_such_module_zart:Thing", "v": {}},
        {TAG: "model", "type": f"{MODULE}:Missing", "v": {}},
        {TAG: "model", "v": {}},
        {TAG: "dataclass", "type": f"{MODULE}:Address", "v": {"town": "x"}},
        {TAG: "dataclass", "type": f"{MODULE}:User", "v": {}},
        {TAG: "namedtuple", "type": f"{MODULE}:Point", "v": [1, 2, 3]},
        [1, {"ok": {TAG: "uuid", "v": 7}}],
    ],
)
def test_corrupt_data_raises_serialization_error(data: Any) -> None:
    with pytest.raises(SerializationError):
        decode(data)


def test_decode_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(SerializationError, match="not JSON"):
        decode((1, 2))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- exceptions


@pytest.mark.parametrize(
    "error",
    [
        CustomError("boom", 3),
        CodedError(404, "missing"),
        ValueError("bad value"),
        KeyError("key"),
        TimeoutError(),
        CustomError((1, 2), UUID_A),
    ],
    ids=repr,
)
def test_exception_round_trips_to_same_class_and_args(error: BaseException) -> None:
    stored = json.loads(json.dumps(encode_exception(error)))
    assert stored["type"] == f"{type(error).__module__}:{type(error).__qualname__}"
    assert stored["message"] == str(error)
    back = decode_exception(stored)
    assert type(back) is type(error)
    assert_same(error.args, back.args)
    assert str(back) == str(error)


def test_exception_that_cannot_be_rebuilt_becomes_stored_error() -> None:
    stored = encode_exception(ReshapingError(7))
    back = decode_exception(stored)
    assert isinstance(back, StoredError)
    assert back.type_name == f"{MODULE}:ReshapingError"
    assert back.message == "failed with code 7"
    assert str(back) == f"{MODULE}:ReshapingError: failed with code 7"


def test_local_exception_class_becomes_stored_error() -> None:
    class LocalError(Exception):
        pass

    stored = encode_exception(LocalError("x"))
    assert isinstance(stored, dict)
    assert stored["args"] is None
    back = decode_exception(stored)
    assert isinstance(back, StoredError)
    assert "LocalError" in back.type_name
    assert back.message == "x"


def test_exception_with_unstorable_args_becomes_stored_error() -> None:
    back = decode_exception(encode_exception(CustomError(object(), "nul\x00")))
    assert isinstance(back, StoredError)
    assert back.type_name == f"{MODULE}:CustomError"
    assert "\x00" not in back.message


def test_exception_whose_class_disappeared_becomes_stored_error() -> None:
    back = decode_exception({"type": "gone.module:OldError", "args": [], "message": "old"})
    assert isinstance(back, StoredError)
    assert str(back) == "gone.module:OldError: old"


def test_stored_error_round_trips_as_itself() -> None:
    first = StoredError("pkg:Thing", "went wrong")
    back = decode_exception(encode_exception(first))
    assert isinstance(back, StoredError)
    assert (back.type_name, back.message) == ("pkg:Thing", "went wrong")


def test_non_exception_class_is_not_called() -> None:
    back = decode_exception({"type": "os:getcwd", "args": [], "message": "x"})
    assert isinstance(back, StoredError)


@pytest.mark.parametrize(
    "data", [None, [], {"type": "x"}, {"message": "x"}, {"type": 1, "message": "m"}]
)
def test_corrupt_stored_error(data: Any) -> None:
    with pytest.raises(SerializationError):
        decode_exception(data)


# --------------------------------------------------------------------------- plain JSON


class Movie(TypedDict):
    title: str
    year: int


def test_to_json_of_a_model_is_plain() -> None:
    data = to_json(USER, User)
    assert data == {
        "id": str(UUID_A),
        "email": "a@b.c",
        "anything": [1, "two", [3.5, None]],
        "address": {"city": "Lyon", "zip_codes": ["69001", "69002"]},
        "born": "1990-05-17",
    }
    assert from_json(data, User) == USER.model_copy(update={"anything": [1, "two", [3.5, None]]})


def test_to_json_without_annotation_uses_the_runtime_type() -> None:
    value = {
        "when": datetime(2026, 1, 1, tzinfo=UTC),
        "id": UUID_A,
        "where": Address("Oslo"),
        "level": Level.HIGH,
        "ids": (1, 2),
        "price": Decimal("1.50"),
    }
    assert to_json(value) == {
        "when": "2026-01-01T00:00:00Z",
        "id": str(UUID_A),
        "where": {"city": "Oslo", "zip_codes": []},
        "level": 2,
        "ids": [1, 2],
        "price": "1.50",
    }


def test_to_json_and_back_for_a_dataclass() -> None:
    data = to_json(Address("Rome", ("00100",)), Address)
    assert data == {"city": "Rome", "zip_codes": ["00100"]}
    assert from_json(data, Address) == Address("Rome", ("00100",))


def test_typed_dict_and_list() -> None:
    movie: Movie = {"title": "Alien", "year": 1979}
    assert to_json(movie, Movie) == movie
    assert from_json({"title": "Alien", "year": "1979"}, Movie) == movie
    assert to_json([1, 2], list[int]) == [1, 2]
    assert from_json([1, "2"], list[int]) == [1, 2]


def test_from_json_without_annotation_returns_the_data() -> None:
    data: JSONValue = {"a": [1, 2]}
    assert from_json(data) is data


@pytest.mark.parametrize(
    ("data", "annotation"),
    [({"title": "x"}, Movie), (["a"], list[int]), ({"email": "x"}, User), ("x", Address)],
)
def test_from_json_bad_data_raises_validation_error(data: Any, annotation: object) -> None:
    with pytest.raises(ValidationError):
        from_json(data, annotation)


def test_unhashable_annotation_still_works() -> None:
    annotation = Annotated[int, Field(ge=0), {"unhashable": []}]
    assert from_json(3, annotation) == 3
    assert to_json(3, annotation) == 3


def test_annotation_pydantic_cannot_handle_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        from_json(1, socket.socket)


def test_to_json_refuses_nul_and_unknown_types() -> None:
    with pytest.raises(SerializationError, match=r"result\['a'\]\[0\]: text containing a NUL"):
        to_json({"a": ["\x00"]}, name="result")
    with pytest.raises(SerializationError, match=r"value\['b\\x00'\]: text containing a NUL"):
        to_json({"b\x00": 1})
    with pytest.raises(SerializationError, match="cannot be turned into JSON"):
        to_json({"a": object()})


# --------------------------------------------------------------------------- size


def test_check_size_returns_compact_utf8_size() -> None:
    assert check_size({"a": [1, 2]}, 100) == len('{"a":[1,2]}')
    assert check_size("é", 100) == 4  # two quotes and two UTF-8 bytes


@pytest.mark.parametrize("value", [None, True, False, 0, -7, 123456789, 10**17, -(10**17), 10**40])
def test_check_size_of_scalars_is_their_json_size(value: object) -> None:
    """Small scalars are measured without the JSON encoder: the same size, the same limit."""
    size = len(json.dumps(value))
    assert check_size(value, 1000) == size
    with pytest.raises(SerializationError, match=f"is {size:,} bytes of JSON"):
        check_size(value, size - 1, name="result")


def test_check_size_refuses_large_values() -> None:
    with pytest.raises(SerializationError, match=r"result is 1,002 bytes of JSON.*limit of 1,000"):
        check_size("x" * 1000, 1000, name="result")


def test_check_size_refuses_non_json() -> None:
    with pytest.raises(SerializationError):
        check_size(math.nan, 100)


def test_encoded_values_always_fit_check_size() -> None:
    data = encode(list(VALUES.values()))
    assert check_size(data, 1_000_000) > 0
