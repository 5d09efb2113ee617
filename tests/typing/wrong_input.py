"""Must fail mypy (tests/unit/test_typed_handles.py): the payload is not the handler's input."""

from __future__ import annotations

from tests.typing.typed_handles import Receipt, checkout
from zart import DurableScheduler


async def wrong_input(scheduler: DurableScheduler) -> None:
    await scheduler.start(checkout, Receipt(total=1))  # line 10: not an OrderInput
