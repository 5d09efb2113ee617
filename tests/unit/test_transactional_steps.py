"""Transactional step declarations and ``zart.session()``, without a database."""

from __future__ import annotations

import pytest

import zart


def test_a_sync_function_cannot_be_a_transactional_step() -> None:
    with pytest.raises(zart.ConfigurationError, match="needs an async function"):

        @zart.step("unit-sync-tx", transactional=True)
        def sync_step() -> None: ...


def test_transactional_must_be_a_bool() -> None:
    with pytest.raises(zart.ConfigurationError, match="True or False"):
        zart.step("unit-bad-flag", transactional="yes")  # type: ignore[arg-type]


def test_a_step_call_takes_no_transactional_option() -> None:
    @zart.step("unit-plain")
    async def plain() -> int:
        return 1

    call = plain()
    with pytest.raises(zart.ConfigurationError, match="takes no options"):
        zart.step(call, transactional=True)  # type: ignore[call-overload]
    call.close()


async def test_session_outside_a_transactional_step_is_a_clear_error() -> None:
    with pytest.raises(zart.NoStepTransaction, match=r"transactional=True"):
        zart.session()


def test_use_session_takes_an_async_session() -> None:
    with pytest.raises(zart.ConfigurationError, match="AsyncSession"), zart.use_session(object()):  # type: ignore[arg-type]
        pass
