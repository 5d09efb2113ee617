"""Must fail mypy (tests/unit/test_typed_handles.py): the result is a Receipt, not a str."""

from __future__ import annotations

from tests.typing.typed_handles import OrderInput, checkout
from zart import DurableScheduler


async def misused_result(scheduler: DurableScheduler) -> None:
    execution_id = await scheduler.start(checkout, OrderInput(order_id=1))
    receipt = await scheduler.wait(execution_id)
    receipt.upper()  # line 12: a Receipt has no upper()
    text: str = receipt  # line 13: nor is it a str
    del text
