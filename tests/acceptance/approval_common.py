"""What the versions of the approval handler share (``approval_v1``, ``_v2``, ``_v3``; the test
is ``tests/acceptance/test_versioning.py``): the request, the side-effect journal and the two
quote steps."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel

import zart


class Request(BaseModel):
    amount: int


def journal(line: str) -> None:
    """The side-effect journal (``APPROVAL_JOURNAL``): one line per step body that ran."""
    with Path(os.environ["APPROVAL_JOURNAL"]).open("a") as file:
        file.write(f"{zart.context().execution_id} {line}\n")


@zart.step("approval-quote")
async def quote(amount: int) -> int:
    journal("quote")
    return amount * 2


@zart.step("approval-quote-v2")
async def new_quote(amount: int) -> int:
    journal("new-quote")
    return amount * 3
