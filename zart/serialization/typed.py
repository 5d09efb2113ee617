"""Typed replay: :func:`encode` / :func:`decode` (see the package docstring)."""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import math
import sys
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from enum import Enum
from typing import Any, TypeAlias
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, RootModel

from zart.errors import SerializationError
from zart.serialization.common import (
    NON_FINITE_MESSAGE,
    NUL,
    TAG,
    UNREADABLE,
    Failure,
    JSONDict,
    JSONValue,
    check_readable,
    text_problem,
)

_Encoder: TypeAlias = Callable[[Any], JSONValue]
_Decoder: TypeAlias = Callable[[JSONDict], object]

# Python prints floats this large with an exponent and PostgreSQL's JSONB prints them back as
# integers ("1e+16" -> 10000000000000000), so they are tagged to come back as floats.
_FLOAT_EXPONENT_LIMIT = 1e16
_SCALARS = frozenset({str, int, float, bool, type(None)})
_PASS_THROUGH = frozenset({int, bool, type(None)})  # stored as is; str and float need checks
_SUPPORTED = (
    "JSON types, tuple, set, frozenset, dict, datetime, date, time, timedelta, UUID, Decimal, "
    "bytes, bytearray, Enum, named tuples, pydantic models and dataclasses"
)
# pydantic >= 2.11 validates by field name even when a field has an alias.
_BY_NAME: dict[str, bool] = (
    {"by_name": True} if "by_name" in BaseModel.model_validate.__code__.co_varnames else {}
)


def encode(value: object, *, name: str = "value") -> JSONValue:
    """Turn ``value`` into self-describing JSON that :func:`decode` reads back exactly.

    JSON scalars, lists and dicts with str keys are returned as (new) plain JSON. Anything else
    becomes a tag ``{"$zart": KIND, ...}``; ``"v"`` holds the tag's encoded content:

    ========================  ==========================================================
    ``tuple``, ``set``,       ``{"$zart": "tuple", "v": [...]}`` (sets sorted when their
    ``frozenset``             items are orderable, so equal sets give equal JSON)
    ``dict``                  ``{"$zart": "dict", "v": [[key, value], ...]}`` when a key is
                              not a str or is ``"$zart"`` itself; otherwise a plain dict
    ``float``                 ``{"$zart": "float", "v": "-0.0"}`` for -0.0 and magnitudes
                              >= 1e16 (JSONB would print those as integers); nan and
                              ±inf are refused (JSON has no such number; rows stored
                              earlier with a nan tag still read back)
    ``datetime``, ``date``,   ISO 8601 in ``"v"``; an aware datetime keeps its UTC offset.
    ``time``                  A ``ZoneInfo`` zone is also kept by key (``"tz"``); any other
                              tzinfo (pytz, dateutil, named ``timezone``) comes back as a
                              fixed-offset ``timezone``: equal, but not the same tzinfo
    ``timedelta``             ``[days, seconds, microseconds]``
    ``UUID``, ``Decimal``     their ``str()``
    ``bytes``, ``bytearray``  base64
    ``enum``                  ``{"type": "module:QualName", "v": value}``, rebuilt by value
    ``namedtuple``            ``{"type": ..., "v": [fields...]}``
    ``model``                 pydantic model: ``{"type": ..., "v": {field: value}}`` read back
                              with ``model_validate`` by field name (validators run again, so
                              they should be idempotent; private attributes are not stored)
    ``dataclass``             ``{"type": ..., "v": {init field: value}}`` read back by calling
                              the class; fields with ``init=False`` are stored in ``"attrs"``
                              and set afterwards
    ========================  ==========================================================

    Raises :class:`SerializationError` (naming ``name`` and the place inside the value) for
    text containing NUL or a lone surrogate, nan and infinity, unsupported types, classes
    defined inside a function, and cycles.
    """
    try:
        return _encode(value)
    except Failure as failure:
        raise failure.error(name) from None
    except RecursionError:
        raise SerializationError(
            f"{name}: cannot store a value that is nested too deeply or contains itself"
        ) from None


def decode(data: JSONValue) -> object:
    """Rebuild the value that :func:`encode` turned into ``data``.

    Raises :class:`SerializationError` when a tag is malformed, names an unknown kind, or
    names a class that cannot be imported or rebuilt (for instance after a code change).
    """
    try:
        return _decode(data)
    except SerializationError:
        raise
    except RecursionError:
        raise SerializationError("cannot read back a stored value nested too deeply") from None
    except Exception as exc:  # a class's constructor or validators refused the stored fields
        raise SerializationError(f"cannot read back a stored value: {exc}") from exc


def _encode(value: Any) -> JSONValue:
    kind = type(value)
    if kind is str:
        if (NUL in value or not value.isascii()) and (problem := text_problem(value)):
            raise Failure(problem, value)
        return value  # type: ignore[no-any-return]
    if kind is int or kind is bool or value is None:
        return value  # type: ignore[no-any-return]
    if kind is dict:
        return _encode_dict(value)
    if kind is list:
        return _encode_list(value)
    if kind is float:
        return _encode_float(value)
    encoder = _ENCODERS.get(kind)
    if encoder is None:
        encoder = _class_encoder(value)
    return encoder(value)


def _encode_dict(value: dict[Any, Any]) -> JSONValue:
    out: JSONDict = {}
    try:
        for key, item in value.items():
            if type(key) is not str or key == TAG:
                return _encode_escaped_dict(value)
            if (NUL in key or not key.isascii()) and (problem := text_problem(key)):
                raise Failure(problem + " (in a dict key)", value, f"[{key!r}]")
            kind = type(item)
            if kind is str:
                if (NUL in item or not item.isascii()) and (problem := text_problem(item)):
                    raise Failure(problem, item)
                out[key] = item
            elif kind is int or kind is bool or item is None:
                out[key] = item
            else:
                out[key] = _encode(item)
    except Failure as failure:
        if failure.culprit is not value:
            failure.locate_in_mapping(value)
        raise
    return out


def _encode_escaped_dict(value: dict[Any, Any]) -> JSONValue:
    pairs: list[JSONValue] = []
    try:
        for key, item in value.items():
            pairs.append([_encode(key), _encode(item)])
    except Failure as failure:
        failure.locate_in_mapping(value)
        raise
    return {TAG: "dict", "v": pairs}


def _encode_list(value: list[Any]) -> list[JSONValue]:
    try:
        return [item if type(item) in _PASS_THROUGH else _encode(item) for item in value]
    except Failure as failure:
        failure.locate_in_sequence(value)
        raise


def _encode_items(value: Iterable[Any]) -> list[JSONValue]:
    try:
        return [_encode(item) for item in value]
    except Failure as failure:
        failure.locate_in_sequence(value)
        raise


def _encode_float(value: float) -> JSONValue:
    if not math.isfinite(value):  # nan, inf, and 1e999999 (which Python reads as inf)
        raise Failure(NON_FINITE_MESSAGE, value)
    if -_FLOAT_EXPONENT_LIMIT < value < _FLOAT_EXPONENT_LIMIT and (
        value != 0.0 or math.copysign(1.0, value) > 0
    ):
        return value
    return {TAG: "float", "v": repr(value)}


def _encode_set(value: set[Any] | frozenset[Any]) -> JSONValue:
    try:
        ordered: list[Any] = sorted(value)
    except TypeError:  # mixed or unorderable items: keep iteration order
        ordered = list(value)
    try:
        items = [_encode(item) for item in ordered]
    except Failure as failure:
        failure.locate_in_sequence(value, unordered=True)
        raise
    return {TAG: "set" if type(value) is set else "frozenset", "v": items}


def _zone_fields(zone: tzinfo | None) -> JSONDict:
    if isinstance(zone, ZoneInfo) and zone.key is not None:
        return {"tz": zone.key}
    return {}


def _encode_datetime(value: datetime) -> JSONValue:
    return {TAG: "datetime", "v": value.isoformat(), **_zone_fields(value.tzinfo)}


def _encode_time(value: time) -> JSONValue:
    return {TAG: "time", "v": value.isoformat(), **_zone_fields(value.tzinfo)}


def _encode_timedelta(value: timedelta) -> JSONValue:
    return {TAG: "timedelta", "v": [value.days, value.seconds, value.microseconds]}


_ENCODERS: dict[type, _Encoder] = {
    tuple: lambda value: {TAG: "tuple", "v": _encode_items(value)},
    set: _encode_set,
    frozenset: _encode_set,
    datetime: _encode_datetime,
    date: lambda value: {TAG: "date", "v": value.isoformat()},
    time: _encode_time,
    timedelta: _encode_timedelta,
    UUID: lambda value: {TAG: "uuid", "v": str(value)},
    Decimal: lambda value: {TAG: "decimal", "v": str(value)},
    bytes: lambda value: {TAG: "bytes", "v": base64.b64encode(value).decode("ascii")},
    bytearray: lambda value: {TAG: "bytearray", "v": base64.b64encode(value).decode("ascii")},
}
"""Encoders by exact type. Classes met at run time (enums, models...) are added on first use."""


def _class_encoder(value: object) -> _Encoder:
    """Build (and remember) the encoder for an Enum, model, dataclass or named tuple class."""
    cls = type(value)
    encoder: _Encoder
    if isinstance(value, Enum):
        encoder = functools.partial(_encode_enum, class_path(cls, value))
    elif isinstance(value, BaseModel):
        encoder = functools.partial(_encode_model, class_path(cls, value))
    elif dataclasses.is_dataclass(value):
        encoder = functools.partial(_encode_dataclass, class_path(cls, value))
    elif isinstance(value, tuple) and hasattr(cls, "_fields"):
        encoder = functools.partial(_encode_namedtuple, class_path(cls, value))
    else:
        raise Failure(_unsupported_message(cls), value)
    _ENCODERS[cls] = encoder
    return encoder


def _unsupported_message(cls: type) -> str:
    bases = (str, int, float, list, dict, tuple, datetime, date)
    base = next((known for known in bases if issubclass(cls, known)), None)
    hint = (
        f" (a subclass of {base.__name__} would come back as a plain {base.__name__}; "
        f"convert it first)"
        if base is not None
        else f"; supported: {_SUPPORTED}"
    )
    return f"cannot store a value of type {cls.__qualname__}{hint}"


def _encode_enum(path: str, value: Enum) -> JSONValue:
    try:
        return {TAG: "enum", "type": path, "v": _encode(value.value)}
    except Failure as failure:
        failure.locate_in_attribute(value, "value")
        raise


def _encode_fields(value: object, names: Iterable[str]) -> JSONDict:
    out: JSONDict = {}
    for field_name in names:
        try:
            out[field_name] = _encode(getattr(value, field_name))
        except Failure as failure:
            failure.locate_in_attribute(value, field_name)
            raise
    return out


def _encode_model(path: str, value: BaseModel) -> JSONValue:
    fields = _encode_fields(value, type(value).model_fields)
    if value.__pydantic_extra__:  # extra="allow": fields beyond the declared ones
        fields.update(_encode_fields(value, value.__pydantic_extra__))
    return {TAG: "model", "type": path, "v": fields}


def _encode_dataclass(path: str, value: object) -> JSONValue:
    init: list[str] = []
    later: list[str] = []
    for field in dataclasses.fields(value):  # type: ignore[arg-type]
        if field.init:
            init.append(field.name)
        elif hasattr(value, field.name):
            later.append(field.name)
    tag: JSONDict = {TAG: "dataclass", "type": path, "v": _encode_fields(value, init)}
    if later:
        tag["attrs"] = _encode_fields(value, later)
    return tag


def _encode_namedtuple(path: str, value: tuple[Any, ...]) -> JSONValue:
    return {TAG: "namedtuple", "type": path, "v": _encode_items(value)}


def class_path(cls: type, value: object) -> str:
    """``module:QualName`` of ``cls``, checked to import back to the very same class."""
    path = f"{cls.__module__}:{cls.__qualname__}"
    if "<locals>" in cls.__qualname__:
        raise Failure(
            f"cannot store an instance of {cls.__module__}.{cls.__qualname__}: the class is "
            f"defined inside a function, so it cannot be imported when the value is read back; "
            f"define it at module level",
            value,
        )
    found = _try_import_class(path)
    if found is not cls and found is not None:  # the module was reloaded since it was cached
        import_class.cache_clear()
        found = _try_import_class(path)
    if found is not cls:
        raise Failure(
            f"cannot store an instance of {cls.__module__}.{cls.__qualname__}: importing "
            f"{path!r} does not give back this class; define it at module level",
            value,
        )
    return path


def _try_import_class(path: str) -> object | None:
    try:
        return import_class(path)
    except (ImportError, AttributeError):
        return None


@functools.lru_cache(maxsize=1024)
def import_class(path: str) -> object:
    module_name, _, qualname = path.partition(":")
    # Never import: a stored type name must not make this process run a module's code.
    found: object | None = sys.modules.get(module_name)
    if found is None:
        raise ImportError(f"module {module_name!r} is not imported in this process")
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def _decode(data: JSONValue) -> object:
    kind = type(data)
    if kind is dict:
        if TAG in data:  # type: ignore[operator]
            return _decode_tag(data)  # type: ignore[arg-type]
        return {
            key: item if type(item) in _SCALARS else _decode(item)
            for key, item in data.items()  # type: ignore[union-attr]
        }
    if kind is list:
        return [item if type(item) in _SCALARS else _decode(item) for item in data]  # type: ignore[union-attr]
    if kind in _SCALARS:
        return data
    raise SerializationError(f"cannot read back a value of type {kind.__qualname__}: not JSON")


def _corrupt(data: JSONDict, problem: str) -> SerializationError:
    shown = json.dumps(data, default=repr)
    if len(shown) > 200:
        shown = shown[:200] + "..."
    return SerializationError(f"corrupt stored value {shown}: {problem}")


def _decode_tag(data: JSONDict) -> object:
    decoder = _DECODERS.get(data[TAG])  # type: ignore[arg-type]
    if decoder is None:
        raise _corrupt(data, f"unknown {TAG} kind {data[TAG]!r}")
    return decoder(data)


def _field(data: JSONDict, key: str, kind: type[Any]) -> Any:
    found = data.get(key)
    if type(found) is not kind:
        raise _corrupt(data, f"{data[TAG]} needs {key!r} of type {kind.__name__}")
    return found


def _decode_items(data: JSONDict) -> list[object]:
    return [_decode(item) for item in _field(data, "v", list)]


def _decode_escaped_dict(data: JSONDict) -> dict[Any, object]:
    out: dict[Any, object] = {}
    for pair in _field(data, "v", list):
        if type(pair) is not list or len(pair) != 2:
            raise _corrupt(data, "dict needs a list of [key, value] pairs")
        out[_decode(pair[0])] = _decode(pair[1])
    return out


def _text_decoder(parse: Callable[[str], object], what: str) -> _Decoder:
    """A decoder for tags whose ``"v"`` is text that ``parse`` reads."""

    def decoder(data: JSONDict) -> object:
        try:
            return parse(_field(data, "v", str))
        except (ValueError, ArithmeticError):  # also binascii.Error, decimal.InvalidOperation
            raise _corrupt(data, f"not {what}") from None

    return decoder


def _zoned(decoder: _Decoder) -> _Decoder:
    """Put back the ``ZoneInfo`` that a datetime or time tag names in ``"tz"``."""

    def zoned_decoder(data: JSONDict) -> object:
        value: Any = decoder(data)
        key = data.get("tz")
        if key is None:
            return value
        if type(key) is not str:
            raise _corrupt(data, "'tz' must be a zone name")
        try:
            zone = ZoneInfo(key)
        except (ZoneInfoNotFoundError, ValueError):
            return value  # the zone left this system's tz database: keep the fixed offset
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.astimezone(zone)  # same instant, and the right fold in the zone
        return value.replace(tzinfo=zone)

    return zoned_decoder


def _decode_base64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _decode_timedelta(data: JSONDict) -> timedelta:
    parts = _field(data, "v", list)
    if len(parts) != 3 or any(type(part) is not int for part in parts):
        raise _corrupt(data, "timedelta needs [days, seconds, microseconds]")
    return timedelta(days=parts[0], seconds=parts[1], microseconds=parts[2])


def _stored_class(data: JSONDict, check: Callable[[type], bool]) -> Any:
    path = _field(data, "type", str)
    try:
        cls = import_class(path)
    except (ImportError, AttributeError, ValueError) as exc:
        raise SerializationError(
            f"cannot read back a stored {data[TAG]}: class {path!r} cannot be imported ({exc})"
        ) from exc
    if not isinstance(cls, type) or not check(cls):
        raise _corrupt(data, f"{path!r} is not a {data[TAG]} class")
    return cls


def _decode_fields(data: JSONDict, key: str) -> dict[str, object]:
    return {name: _decode(item) for name, item in _field(data, key, dict).items()}


def _decode_enum(data: JSONDict) -> Enum:
    cls = _stored_class(data, lambda cls: issubclass(cls, Enum))
    if "v" not in data:
        raise _corrupt(data, "enum needs 'v'")
    member: Enum = cls(_decode(data["v"]))
    return member


def _decode_model(data: JSONDict) -> BaseModel:
    cls = _stored_class(data, lambda cls: issubclass(cls, BaseModel))
    fields = _decode_fields(data, "v")
    if issubclass(cls, RootModel):  # validates its single value, not a dict of fields
        if set(fields) != {"root"}:
            raise _corrupt(data, "a RootModel needs exactly the field 'root'")
        root_model: BaseModel = cls.model_validate(fields["root"])
        return root_model
    model: BaseModel = cls.model_validate(fields, **_BY_NAME)
    return model


def _decode_dataclass(data: JSONDict) -> object:
    cls = _stored_class(data, dataclasses.is_dataclass)
    value = cls(**_decode_fields(data, "v"))
    if "attrs" in data:
        for name, item in _decode_fields(data, "attrs").items():
            object.__setattr__(value, name, item)  # also works on frozen dataclasses
    return value


def _decode_namedtuple(data: JSONDict) -> tuple[Any, ...]:
    cls = _stored_class(data, lambda cls: issubclass(cls, tuple) and hasattr(cls, "_fields"))
    value: tuple[Any, ...] = cls(*_decode_items(data))
    return value


def _unreadable(data: JSONDict) -> object:
    check_readable(data)
    raise _corrupt(data, "unreadable")  # pragma: no cover - check_readable raised


_DECODERS: dict[str, _Decoder] = {
    UNREADABLE: _unreadable,
    "tuple": lambda data: tuple(_decode_items(data)),
    "set": lambda data: set(_decode_items(data)),
    "frozenset": lambda data: frozenset(_decode_items(data)),
    "dict": _decode_escaped_dict,
    "float": _text_decoder(float, "a float"),
    "datetime": _zoned(_text_decoder(datetime.fromisoformat, "an ISO datetime")),
    "date": _text_decoder(date.fromisoformat, "an ISO date"),
    "time": _zoned(_text_decoder(time.fromisoformat, "an ISO time")),
    "timedelta": _decode_timedelta,
    "uuid": _text_decoder(UUID, "a UUID"),
    "decimal": _text_decoder(Decimal, "a decimal"),
    "bytes": _text_decoder(_decode_base64, "base64"),
    "bytearray": _text_decoder(lambda text: bytearray(_decode_base64(text)), "base64"),
    "enum": _decode_enum,
    "model": _decode_model,
    "dataclass": _decode_dataclass,
    "namedtuple": _decode_namedtuple,
}
