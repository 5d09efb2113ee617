"""What the typed and the plain format share: the JSON value type, the tag key, the text
rules (NUL, lone surrogates), non-finite floats and the failure that collects a value's path
while it unwinds."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TypeAlias

from zart.errors import SerializationError

JSONValue: TypeAlias = "dict[str, JSONValue] | list[JSONValue] | str | int | float | bool | None"
"""A value made only of what :func:`json.dumps` writes and :func:`json.loads` reads back."""

TAG = "$zart"
"""The reserved key that marks a tagged value."""

JSONDict: TypeAlias = "dict[str, JSONValue]"

NUL = "\x00"
NUL_MESSAGE = (
    "text containing a NUL character cannot be stored (PostgreSQL JSON cannot hold it); "
    "remove it or return bytes instead"
)
SURROGATE_MESSAGE = (
    "text containing a lone surrogate (such as '\\ud800') is not valid Unicode and cannot be "
    "stored as UTF-8; decode the text with errors='replace' or return bytes instead"
)
NON_FINITE_MESSAGE = "cannot store nan or infinity: JSON has no such number"

UNREADABLE = "unreadable"
"""The tag kind :func:`read_stored_json` gives a stored column it cannot read."""


def read_stored_json(text: str | bytes) -> JSONValue:
    """``json.loads`` for the JSON columns, which never raises: a row planted with SQL (or
    written by a bug) holding JSON nested deeper than the decoder goes, or text that is not
    JSON, reads as ``{"$zart": "unreadable", "v": why}``, so the worker that reads it goes on
    and :func:`~zart.serialization.decode` refuses it with a clear error, failing only the
    execution it belongs to."""
    try:
        value: JSONValue = json.loads(text)
    except RecursionError:
        why = "the stored JSON is nested too deeply to read"
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        why = f"the stored text is not JSON ({exc})"
    else:
        return value
    return {TAG: UNREADABLE, "v": why}


def check_readable(data: object) -> None:
    """Raise :class:`SerializationError` saying why when ``data`` is what
    :func:`read_stored_json` gives a stored column it could not read."""
    if type(data) is dict and data.get(TAG) == UNREADABLE:
        raise SerializationError(f"cannot read back a stored value: {data.get('v')}")


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored (a NUL, a lone surrogate), or ``None`` when it can."""
    if NUL in text:
        return NUL_MESSAGE
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return SURROGATE_MESSAGE
    return None


def storable_text(text: str) -> str:
    """``text`` with NUL and lone surrogates escaped (``\\x00``, ``\\ud800``): for messages
    that are stored whatever they contain, such as an exception's."""
    if text.isascii() and NUL not in text:
        return text
    escaped = text.replace(NUL, "\\x00")
    return escaped.encode("utf-8", "backslashreplace").decode("utf-8")


class Failure(Exception):
    """Raised inside the encoder; each container it crosses adds its place to ``path``."""

    def __init__(self, message: str, culprit: object, segment: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.culprit = culprit  # the child of the container being unwound
        self.segments = [] if segment is None else [segment]

    def locate_in_sequence(self, container: Iterable[object], *, unordered: bool = False) -> None:
        for index, item in enumerate(container):
            if item is self.culprit:
                self.segments.append("[*]" if unordered else f"[{index}]")
                break
        self.culprit = container

    def locate_in_mapping(self, container: dict[Any, Any]) -> None:
        for key, item in container.items():
            if item is self.culprit:
                self.segments.append(f"[{key!r}]")
                break
            if key is self.culprit:
                self.segments.append(f"[{key!r}] (the key)")
                break
        self.culprit = container

    def locate_in_attribute(self, container: object, name: str) -> None:
        self.segments.append(f".{name}")
        self.culprit = container

    def error(self, name: str) -> SerializationError:
        return SerializationError(f"{name}{''.join(reversed(self.segments))}: {self.message}")
