"""Retries: a flaky step that succeeds on its third attempt, and one that runs out of retries.

``retry="fixed(3, 100ms)"`` allows the first try plus three retries (attempts 0 to 3), 100 ms
apart. Inside the step, ``zart.context()`` tells which attempt is running. When every attempt
fails, ``zart.step(...)`` returns ``zart.ZartErr(zart.RetryExhausted(...))`` instead of raising.

    python examples/retries.py
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import zart

DATABASE = Path("retries.db")
STARTED = time.monotonic()


def elapsed() -> str:
    return f"{(time.monotonic() - STARTED) * 1000:5.0f} ms"


@zart.step("fetch-exchange-rate", retry="fixed(3, 100ms)")
async def fetch_exchange_rate(currency: str) -> float:
    info = zart.context()
    print(
        f"  [{elapsed()}] fetch-exchange-rate: attempt {info.current_attempt}"
        f" of 0..{info.max_retries} (retry: {info.is_retry()})"
    )
    if info.current_attempt < 2:
        raise ConnectionError(f"rates service busy (attempt {info.current_attempt})")
    return 1.08 if currency == "USD" else 1.0


@zart.step("call-legacy-api", retry="fixed(2, 50ms)")
async def call_legacy_api() -> str:
    attempt = zart.context().current_attempt
    print(f"  [{elapsed()}] call-legacy-api: attempt {attempt}")
    raise TimeoutError(f"legacy API did not answer (attempt {attempt})")


@zart.durable("rates")
async def rates(data: dict[str, str]) -> dict[str, str]:
    rate = await fetch_exchange_rate(data["currency"])
    match await zart.step(call_legacy_api()):
        case zart.Ok(value):
            legacy = value
        case zart.ZartErr(zart.RetryExhausted(attempts=attempts, last_error=last)):
            legacy = f"gave up after {attempts} attempts ({type(last).__name__}: {last})"
        case other:
            raise RuntimeError(f"unexpected outcome {other!r}")
    return {"rate": str(rate), "legacy": legacy}


async def main() -> None:
    async with zart.DurableScheduler(f"sqlite+aiosqlite:///{DATABASE}") as scheduler:
        await scheduler.migrate()
        async with scheduler.run_worker(poll_interval=0.05):
            execution_id = await scheduler.start(rates, {"currency": "USD"})
            result = await scheduler.wait(execution_id, timeout=30)
    print(f"rate: {result['rate']}")
    print(f"legacy: {result['legacy']}")


if __name__ == "__main__":
    for suffix in ("", "-wal", "-shm"):  # start from an empty database on every run
        Path(f"{DATABASE}{suffix}").unlink(missing_ok=True)
    asyncio.run(main())
