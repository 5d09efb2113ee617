"""How a step function is run: what ``@zart.step(...)`` recorded about it."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from zart.durations import RetryPolicy

TimeoutScope = Literal["global", "per_attempt"]


@dataclass(frozen=True, slots=True)
class StepDefinition:
    """How a step function is to be run: its name template, retry policy, timeout, and whether
    each attempt runs in a transaction that also records its outcome."""

    name: str
    fn: Callable[..., Any]
    retry: RetryPolicy
    timeout: timedelta | None
    timeout_scope: TimeoutScope
    signature: inspect.Signature
    placeholders: frozenset[str]
    transactional: bool = False
    #: The parameters, in order, when every one is a plain positional one (no ``*args``,
    #: ``**kwargs`` or keyword-only): a call passing all of them positionally binds by zip.
    positional: tuple[str, ...] | None = None
    #: Whether ``fn`` is a coroutine function: asked once, not at every call.
    coroutine: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "coroutine", inspect.iscoroutinefunction(self.fn))

    def resolve_name(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """The step name for one call: ``{placeholders}`` filled from the bound arguments."""
        if not self.placeholders:
            return self.name
        if not kwargs and self.positional is not None and len(args) == len(self.positional):
            return self.name.format_map(dict(zip(self.positional, args, strict=True)))
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return self.name.format_map(bound.arguments)

    async def invoke(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run the body once: awaited if async, in a worker thread if sync (the thread sees the
        same ``zart.context()``)."""
        if self.coroutine:
            return await self.fn(*args, **kwargs)
        result = await asyncio.to_thread(self.fn, *args, **kwargs)
        if inspect.isawaitable(result):
            return await result
        return result
