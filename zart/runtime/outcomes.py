"""The three-way step outcome and the failures handed to ``on_failure``.

``zart.step(call)`` returns one of :class:`Ok`, :class:`BusinessErr` or :class:`ZartErr`;
all three support structural pattern matching::

    match await zart.step(check_balance(account)):
        case zart.Ok(balance): ...
        case zart.BusinessErr(InsufficientFunds() as e): ...
        case zart.ZartErr(error): raise error
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from zart.errors import RetryExhausted, StepTimedOut

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)


@dataclass(frozen=True, slots=True)
class Ok(Generic[T]):
    """The step succeeded with ``value``."""

    value: T


@dataclass(frozen=True, slots=True)
class BusinessErr(Generic[E]):
    """The step raised its own exception: a business decision to branch on."""

    error: E


@dataclass(frozen=True, slots=True)
class ZartErr:
    """Zart could not complete the step: retries ran out or it timed out."""

    error: RetryExhausted | StepTimedOut


StepOutcome = Ok[T] | BusinessErr[Any] | ZartErr


class ExecutionFailure:
    """Why ``on_failure(data, failure)`` was called. One of the subclasses below."""

    __slots__ = ()

    error: BaseException


@dataclass(frozen=True, slots=True)
class StepFailed(ExecutionFailure):
    """A step's failure propagated to the top of the handler. ``error`` is what the handler saw:
    the step's own exception, :class:`~zart.RetryExhausted` or :class:`~zart.StepTimedOut`;
    ``raw`` is its stored JSON form."""

    step: str
    error: BaseException
    raw: Any


@dataclass(frozen=True, slots=True)
class DeadlineExceeded(ExecutionFailure):
    """The execution ran past the ``timeout`` of its durable handler."""

    error: BaseException


@dataclass(frozen=True, slots=True)
class HandlerFailed(ExecutionFailure):
    """The handler's own code (not a step) raised ``error``."""

    error: BaseException
