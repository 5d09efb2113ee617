"""A careless version 3: the new quote without a patch. ``zart replay`` must refuse it for
the runs recorded with the old quote."""

from __future__ import annotations

import zart
from tests.acceptance.approval_common import Request, new_quote


@zart.durable("deploy-approval")
async def approval(data: Request) -> str:
    price = await new_quote(data.amount)
    decision = await zart.wait_for_event("approval")
    return f"new pricing: {price}, {decision['answer']}"
