"""Plain JSON for outside clients (:func:`to_json` / :func:`from_json`) and the size check."""

from __future__ import annotations

import functools
import json
import math
from typing import Any, cast

from pydantic import ConfigDict, PydanticSchemaGenerationError, PydanticUserError, TypeAdapter
from pydantic_core import PydanticSerializationError

from zart.errors import ConfigurationError, SerializationError
from zart.serialization.common import (
    NON_FINITE_MESSAGE,
    SURROGATE_MESSAGE,
    Failure,
    JSONValue,
    text_problem,
)


def to_json(value: object, annotation: object = Any, *, name: str = "value") -> JSONValue:
    """Plain JSON (no tags) for values that outside clients read: payloads and results.

    This is pydantic's ``TypeAdapter(annotation).dump_python(value, mode="json")``; with no
    annotation pydantic infers from the runtime value (models and dataclasses become objects,
    datetimes ISO strings, UUIDs and Decimals strings, tuples and sets lists, bytes UTF-8
    text). A value that does not match ``annotation`` is dumped by its runtime type rather
    than refused. Raises :class:`SerializationError` naming the place for a value pydantic
    cannot dump, nan and infinity (kept as such by the adapter, never turned into ``null``),
    and text containing NUL or a lone surrogate; :class:`ConfigurationError` for an
    annotation pydantic does not understand.
    """
    try:
        # Before the dump too: pydantic replaces a lone surrogate in a dict key it validates
        # with U+FFFD, which would store text the caller never sent.
        _check_plain(value)
    except Failure as failure:
        raise failure.error(name) from None
    try:
        data: JSONValue = _adapter(annotation).dump_python(value, mode="json", warnings=False)
    except PydanticSerializationError as exc:
        raise SerializationError(f"{name}: cannot be turned into JSON: {exc}") from exc
    except UnicodeEncodeError:  # pydantic encodes dict keys: a lone surrogate in one
        raise SerializationError(f"{name}: {SURROGATE_MESSAGE} (in a dict key)") from None
    except (ValueError, RecursionError) as exc:  # "Maximum serialization depth exceeded"
        raise SerializationError(f"{name}: cannot be turned into JSON: {exc}") from None
    try:
        _check_plain(data)
    except Failure as failure:
        raise failure.error(name) from None
    return data


def from_json(data: JSONValue, annotation: object = Any) -> object:
    """Validate plain JSON against ``annotation`` (``TypeAdapter(annotation).validate_python``).

    With no annotation the data is returned as is. Invalid data raises pydantic's
    ``ValidationError`` unchanged (it is a ``ValueError``); callers that face users turn it
    into :class:`~zart.errors.InvalidPayload` and may show its ``errors()``.
    """
    return _adapter(annotation).validate_python(data)


def _adapter(annotation: object) -> TypeAdapter[Any]:
    try:
        hash(annotation)
    except TypeError:  # e.g. Annotated[...] with an unhashable marker: no caching
        return _build_adapter(annotation)
    return _cached_adapter(annotation)


# nan and inf stay floats in the dump (pydantic's default turns them into null for ``Any``),
# so that _check_plain refuses them instead of storing a null the caller never sent.
_KEEP_NAN = ConfigDict(ser_json_inf_nan="constants")


def _build_adapter(annotation: object) -> TypeAdapter[Any]:
    try:
        try:
            return TypeAdapter(cast(Any, annotation), config=_KEEP_NAN)
        except PydanticUserError:  # models, dataclasses, TypedDicts: their own config rules
            return TypeAdapter(cast(Any, annotation))
    except PydanticSchemaGenerationError as exc:
        raise ConfigurationError(f"pydantic cannot handle the type {annotation!r}: {exc}") from exc


_cached_adapter = functools.lru_cache(maxsize=512)(_build_adapter)


def _check_plain(data: Any) -> None:
    """Refuse text containing NUL or a lone surrogate and non-finite floats in plain JSON."""
    kind = type(data)
    if kind is str and (problem := text_problem(data)):
        raise Failure(problem, data)
    if kind is float and not math.isfinite(data):
        raise Failure(NON_FINITE_MESSAGE, data)
    if kind is list:
        try:
            for item in data:
                _check_plain(item)
        except Failure as failure:
            failure.locate_in_sequence(data)
            raise
    elif kind is dict:
        try:
            for key, item in data.items():
                _check_plain_key(data, key)
                _check_plain(item)
        except Failure as failure:
            if failure.culprit is not data:
                failure.locate_in_mapping(data)
            raise


def _check_plain_key(data: dict[str, Any], key: str) -> None:
    if problem := text_problem(key):
        raise Failure(problem + " (in a dict key)", data, f"[{key!r}]")


# --------------------------------------------------------------------------- size


_SMALL_INT = 10**18  # ints within this are measured without the encoder (their repr)


def check_size(data: JSONValue, limit_bytes: int, *, name: str = "value") -> int:
    """Return the size in bytes of ``data`` as compact UTF-8 JSON text.

    Raises :class:`SerializationError` naming the size and the limit when it is larger than
    ``limit_bytes``, or when ``data`` is not JSON (for instance nan).
    """
    kind = type(data)
    if data is None or kind is bool:  # the common tiny results: no JSON encoder run
        size = 4 if data is None or data is True else 5
    elif kind is int and -_SMALL_INT < data < _SMALL_INT:  # type: ignore[operator]
        size = len(repr(data))
    else:
        try:
            text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"{name}: not JSON: {exc}") from exc
        size = len(text.encode("utf-8"))
    if size > limit_bytes:
        raise SerializationError(
            f"{name} is {size:,} bytes of JSON, over the limit of {limit_bytes:,} bytes"
        )
    return size
