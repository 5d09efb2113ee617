"""An exception escaping a run's task (not raised by the handler's own code, so nothing
classifies it) ends the execution as failed with kind ``internal_error`` and the error stored,
after one claim, and the worker goes on (issue 13): without that fallback the task ended,
the execution stayed ``running`` and was claimed, and crashed, again at every lease."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, field_validator

import zart
from tests.integration.runtime_helpers import FAST_WORKER
from zart import DurableScheduler

#: Known when the start validates the payload; gone by the time a worker rebuilds it (as after
#: a deploy that dropped an entry).
KNOWN_SKUS: dict[str, int] = {}


class Order(BaseModel):
    sku: str

    @field_validator("sku")
    @classmethod
    def known(cls, sku: str) -> str:
        KNOWN_SKUS[sku]  # a KeyError is no ValueError: pydantic lets it through, unwrapped
        return sku


@zart.durable("internal-error-order")
async def order_handler(order: Order) -> str:
    return order.sku  # pragma: no cover - its input is never rebuilt


@zart.durable("internal-error-healthy")
async def healthy_handler() -> str:
    return "fine"


async def test_an_exception_escaping_the_run_fails_the_execution_as_internal_error(
    scheduler: DurableScheduler,
) -> None:
    KNOWN_SKUS["sku-1"] = 1
    execution_id = await scheduler.start(order_handler, Order(sku="sku-1"))
    KNOWN_SKUS.clear()
    async with scheduler.run_worker(**FAST_WORKER):
        with pytest.raises(zart.ExecutionFailed) as failed:
            await scheduler.wait(execution_id, timeout=20)
        error: Any = failed.value.error
        assert error["kind"] == "internal_error"
        assert error["error"]["type"] == "builtins:KeyError"
        assert "sku-1" in error["message"]
        record = await scheduler.status(execution_id)
        assert record.status is zart.ExecutionStatus.FAILED
        assert record.claim_count == 1  # ended, not claimed again
        healthy = await scheduler.start(healthy_handler)  # the worker is alive
        assert await scheduler.wait(healthy, timeout=20) == "fine"
