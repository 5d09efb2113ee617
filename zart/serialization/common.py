"""What the typed and the plain format share: the JSON value type, the tag key, the NUL
rule and the failure that collects a value's path while it unwinds."""

from __future__ import annotations

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
