"""The approval handler after the pricing change, behind a patch: runs recorded before it
keep the old quote; new runs take the new one."""

from __future__ import annotations

import zart
from tests.acceptance.approval_common import Request, new_quote, quote


@zart.durable("deploy-approval")
async def approval(data: Request) -> str:
    if await zart.patched("new-pricing"):
        price, pricing = await new_quote(data.amount), "new pricing"
    else:
        price, pricing = await quote(data.amount), "old pricing"
    decision = await zart.wait_for_event("approval")
    return f"{pricing}: {price}, {decision['answer']}"
