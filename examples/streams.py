"""Published values and durable streams: report progress, stream output, read it live.

A report handler publishes its progress (``zart.publish``: last value wins) and streams each
section it writes (``zart.write_stream``), then closes the stream. Another scheduler (a web
process, say) waits for the progress (``get_published``) and follows the stream
(``read_stream``); it disconnects half way and reconnects from the last offset it saw, and
still sees every section once, in order. Finally the same stream is read over HTTP as
server-sent events, as a browser's ``EventSource`` would.

    python examples/streams.py
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from fastapi import FastAPI

import zart
from zart.api import create_router

DATABASE = Path("streams.db")
URL = f"sqlite+aiosqlite:///{DATABASE}"
SECTIONS = ["summary", "revenue", "costs", "outlook"]


@zart.step("write-section-{name}")
async def write_section(name: str) -> str:
    await asyncio.sleep(0.05)  # the slow part: a query, a model call...
    return f"{name}: all good"


@zart.durable("quarterly-report")
async def quarterly_report(quarter: str) -> int:
    await zart.publish("progress", {"done": 0, "of": len(SECTIONS)})
    for done, name in enumerate(SECTIONS, start=1):
        text = await write_section(name)
        await zart.write_stream("sections", text)  # written once, even across a crash
        await zart.publish("progress", {"done": done, "of": len(SECTIONS)})
    await zart.close_stream("sections")  # readers end after the last section
    return len(SECTIONS)


async def follow(reader: zart.DurableScheduler, execution_id: str) -> None:
    first = await reader.get_published(execution_id, "progress", timeout=30)
    print(f"progress when the reader first asked: {first}")
    seen: list[tuple[int, str]] = []
    async for offset, text in reader.stream_entries(execution_id, "sections"):
        seen.append((offset, text))
        if len(seen) == 2:
            break  # the reader disconnects half way...
    print(f"first connection: offsets {[offset for offset, _ in seen]}")
    # ...and reconnects from the offset after the last one it saw.
    async for text in reader.read_stream(execution_id, "sections", offset=seen[-1][0] + 1):
        seen.append((len(seen), text))
    print(f"after reconnecting, every section once, in order: {[t for _, t in seen]}")


async def main() -> None:
    async with (
        zart.DurableScheduler(URL) as app_scheduler,
        zart.DurableScheduler(URL) as reader,
    ):
        await app_scheduler.migrate()
        async with app_scheduler.run_worker():
            execution_id = await app_scheduler.start(quarterly_report, "2026-Q4")
            await follow(reader, execution_id)
            await app_scheduler.wait(execution_id, timeout=30)
        print(f"final progress: {await reader.get_published(execution_id, 'progress')}")

        # The same stream over HTTP, as server-sent events (each event's id is its offset).
        app = FastAPI()
        app.include_router(create_router(reader, api_token=""))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://zart") as http:
            answer = await http.get(
                f"/api/v1/executions/{execution_id}/streams/sections",
                headers={"Last-Event-ID": "1"},  # what a reconnecting EventSource sends
            )
        print(f"HTTP {answer.status_code} {answer.headers['content-type']}")
        for line in answer.text.splitlines():
            if line.startswith(("id:", "data:", "event:")):
                print(f"  {line}")


if __name__ == "__main__":
    for suffix in ("", "-wal", "-shm"):  # start from an empty database on every run
        Path(f"{DATABASE}{suffix}").unlink(missing_ok=True)
    asyncio.run(main())
