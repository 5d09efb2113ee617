"""Durable handlers that stream, for the streams' acceptance tests (``zart worker`` and
``zart serve`` import this module).

``stream-flow`` writes ``count`` items to the stream ``numbers`` as fast as it can, then
closes it; the crash test kills its worker mid-stream. ``stream-gated`` writes three items,
waits for the event ``more``, writes three more and closes: the SSE test reads it live.
"""

from __future__ import annotations

from typing import Any

import zart


@zart.durable("stream-flow")
async def stream_flow(data: dict[str, Any]) -> int:
    for n in range(data["count"]):
        await zart.write_stream("numbers", {"n": n})
        await zart.publish("progress", n)
    await zart.close_stream("numbers")
    return int(data["count"])


@zart.durable("stream-gated")
async def stream_gated(data: dict[str, Any]) -> str:
    for n in range(3):
        await zart.write_stream("numbers", n)
    await zart.wait_for_event("more")
    for n in range(3, 6):
        await zart.write_stream("numbers", n)
    await zart.close_stream("numbers")
    return "done"
