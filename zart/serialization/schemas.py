"""JSON schemas of wait models, and the check of an offered event against a stored one.

A wait's ``model=`` is a Python type only the waiting handler's process knows; what it records
is the type's JSON schema (pydantic's, validation mode), so any process that offers the event
(the HTTP API, ``zart event send``) can refuse a payload that cannot fit before storing it.
pydantic validates only against Python types, so the schema is checked by ``jsonschema_rs``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, cast

import jsonschema_rs
from pydantic import PydanticUserError, TypeAdapter

__all__ = ["model_schema", "schema_problems"]

#: At most this many misfits are named; a payload wrong everywhere gets a readable message.
_MAX_PROBLEMS = 10


def model_schema(model: object) -> dict[str, Any] | None:
    """The JSON schema of ``model`` (a pydantic model, dataclass or any type TypeAdapter
    accepts); ``None`` when pydantic cannot describe it (an arbitrary class): offers of that
    event are then not checked."""
    try:
        hash(model)
    except TypeError:
        return _schema(model)
    return _cached_schema(model)


@lru_cache(maxsize=256)
def _cached_schema(model: object) -> dict[str, Any] | None:
    return _schema(model)


def _schema(model: object) -> dict[str, Any] | None:
    try:
        return TypeAdapter(cast(Any, model)).json_schema(mode="validation")
    except (PydanticUserError, TypeError, ValueError):  # includes no-JSON-schema types
        return None


def schema_problems(schema: dict[str, Any], payload: Any) -> list[str]:
    """Why ``payload`` does not fit ``schema``, one line per misfit naming its place
    (``approved: ...``; ``(payload)`` for the whole value); empty when it fits."""
    try:
        validator = jsonschema_rs.validator_for(schema)
    except (ValueError, jsonschema_rs.ValidationError):  # a schema we cannot check: no check
        return []
    problems = []
    for error in validator.iter_errors(payload):
        place = ".".join(str(part) for part in error.instance_path) or "(payload)"
        problems.append(f"{place}: {error.message}")
        if len(problems) == _MAX_PROBLEMS:
            break
    return problems
