"""The approval handler as first deployed: quote a price, wait for a human's approval,
report. Version 2 (``approval_v2``) changes the pricing behind a patch."""

from __future__ import annotations

import zart
from tests.acceptance.approval_common import Request, quote


@zart.durable("deploy-approval")
async def approval(data: Request) -> str:
    price = await quote(data.amount)
    decision = await zart.wait_for_event("approval")
    return f"old pricing: {price}, {decision['answer']}"
