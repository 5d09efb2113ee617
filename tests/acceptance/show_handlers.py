"""Durable handlers whose timelines ``tests/acceptance/test_cli_show.py`` reads through
``zart show``, ``zart status`` and ``zart list``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import zart

LONG_REASON = (
    "the card issuer declined the charge because the card was reported lost; ask the customer"
    " for another card, and do not retry with this one: every retry is logged as fraud by the"
    " issuer and ends with the account frozen (reference 4711-0815-DECLINED-LOST-CARD)"
)


@zart.step("show-quote")
async def quote(sku: str) -> tuple[str, datetime]:
    return sku, datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


@zart.step("show-charge")
async def charge(sku: str) -> None:
    raise PermissionError(LONG_REASON)


@zart.durable("show-order")
async def order(sku: str) -> str:
    await quote(sku)
    decision = await zart.wait_for_event("approval", timeout=timedelta(days=2))
    if decision != "approved":
        await charge(sku)
    return str(decision)
