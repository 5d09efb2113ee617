"""The onboarding workflow: a welcome e-mail (a plain step) and a welcome credit written in a
transactional step, so the credit and the step's recorded outcome commit together: however
often the worker crashes, the user gets the credit exactly once."""

from __future__ import annotations

import logging

from pydantic import BaseModel

import zart

from .models import Credit, User

logger = logging.getLogger(__name__)

WELCOME_CREDIT = 10


class Signup(BaseModel):
    user_id: int
    email: str


@zart.step("send-welcome-email", retry="exponential(3, 1s)")
async def send_welcome_email(email: str) -> str:
    logger.info("sending a welcome e-mail to %s", email)  # a real app calls its mail API here
    return f"welcome e-mail sent to {email}"


@zart.step("grant-welcome-credit", transactional=True)
async def grant_welcome_credit(user_id: int) -> int:
    session = zart.session()  # the step's transaction, which also records its outcome
    user = await session.get(User, user_id)
    if user is None:
        raise LookupError(f"user {user_id} does not exist")
    user.welcomed = True
    session.add(Credit(user_id=user_id, amount=WELCOME_CREDIT, reason="welcome"))
    return WELCOME_CREDIT


@zart.durable("user-onboarding", timeout="1h")
async def onboarding(signup: Signup) -> str:
    await send_welcome_email(signup.email)
    credit = await grant_welcome_credit(signup.user_id)
    return f"{signup.email} onboarded with {credit} credits"
