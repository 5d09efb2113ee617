"""Type drift: a stored step result that no longer fits the step's return annotation.

Replay hands a step's stored value back with the type it was stored with
(:mod:`zart.serialization`). When a deploy changes what a step returns (``int`` to a model),
the old runs' stored values would reach the new code and fail far from the cause (an
``AttributeError`` deep in the handler). So a replayed result is checked against the step's
return annotation, at the step: a mismatch is a :class:`~zart.errors.NonDeterministicReplay`
naming the step, the stored type and the expected one, and the execution is held like any
other divergence.

The check is built once per step function (a dict lookup and an ``isinstance`` per replayed
step) and is deliberately shallow: the outer type (``list[int]`` checks ``list``), the members
of a union, ``None``, literals. Annotations it cannot check (``Any``, type variables,
protocols, strings it cannot resolve) accept every value.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any

from zart.errors import NonDeterministicReplay

Check = Callable[[object], bool]

_checks: dict[Callable[..., Any], tuple[Check, str] | None] = {}


def check_result(fn: Callable[..., Any], step: str, position: int, value: object) -> None:
    """Raise :class:`NonDeterministicReplay` when ``value`` (stored for step ``step``) does
    not fit ``fn``'s return annotation."""
    try:
        found = _checks[fn]
    except KeyError:
        found = _checks[fn] = _check_of(fn)
    if found is None:
        return
    check, expected = found
    if check(value):
        return
    stored = type(value)
    raise NonDeterministicReplay(
        f"step {step!r} (position {position}) has a stored result of type"
        f" {stored.__module__}.{stored.__qualname__}, but the step now returns {expected}; the"
        " step's return type changed under a running execution",
        step=step,
        position=position,
    )


def _check_of(fn: Callable[..., Any]) -> tuple[Check, str] | None:
    try:
        annotation = typing.get_type_hints(fn, include_extras=False).get("return", Any)
    except Exception:  # an annotation that cannot be resolved here: nothing to check
        return None
    check = _checker(annotation)
    return None if check is None else (check, _describe(annotation))


def _describe(annotation: object) -> str:
    if isinstance(annotation, type):
        return f"{annotation.__module__}.{annotation.__qualname__}"
    return repr(annotation)


def _checker(annotation: object) -> Check | None:
    if annotation is Any or isinstance(annotation, typing.TypeVar):
        return None
    if annotation is None or annotation is type(None):
        return lambda value: value is None
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        members = [_checker(a) for a in typing.get_args(annotation)]
        if any(m is None for m in members):
            return None
        return lambda value: any(m(value) for m in members)  # type: ignore[misc]
    if origin is typing.Literal:
        allowed = typing.get_args(annotation)
        return lambda value: value in allowed
    if origin is not None:
        return _instance_of(origin) if isinstance(origin, type) else None
    if annotation is float:  # the numeric tower: an int is a float
        return lambda value: isinstance(value, (int, float))
    if isinstance(annotation, type):
        return _instance_of(annotation)
    return None


def _instance_of(cls: type) -> Check | None:
    try:
        isinstance(None, cls)
    except TypeError:  # a protocol, a TypedDict: not checkable with isinstance
        return None
    return lambda value: isinstance(value, cls)
