"""The dashboard inside your own FastAPI app, under a prefix and behind a token.

``create_router(scheduler, dashboard=True)`` mounts the HTTP API and the web dashboard at
``/ops/``. This script starts an execution that waits for an approval, then plays the browser's
part over HTTP: before signing in, the page is only a sign-in form and the assets answer 401;
the sign-in sets an HttpOnly session cookie (not the token); then the page, its scripts and the
API answer, and the event the dashboard's form would send finishes the execution.

    python examples/dashboard.py            # the walk-through above
    python examples/dashboard.py --serve    # then open http://127.0.0.1:8000/ops/ (token: demo)
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

import zart
from zart.api import create_router

DATABASE = Path("dashboard.db")
TOKEN = "demo"

scheduler = zart.DurableScheduler(f"sqlite+aiosqlite:///{DATABASE}")


@zart.durable("deploy")
async def deploy(data: dict[str, str]) -> str:
    decision = await zart.wait_for_event("approval")
    return f"{data['service']} deployed, approved by {decision['by']}"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with scheduler:
        await scheduler.migrate()
        async with scheduler.run_worker(poll_interval=0.05):
            yield


app = FastAPI(lifespan=lifespan)
app.include_router(create_router(scheduler, api_token=TOKEN, dashboard=True), prefix="/ops")


async def walk_through() -> None:
    async with lifespan(app):
        execution_id = await scheduler.start(deploy, {"service": "billing"})
        for _ in range(600):  # until the worker has run it up to its wait
            if (await scheduler.status(execution_id)).status is zart.ExecutionStatus.WAITING:
                break
            await asyncio.sleep(0.05)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://local") as browser:
            page = await browser.get("/ops/")
            script = (await browser.get("/ops/dashboard/app.js")).status_code
            print(f"before signing in: a sign-in form ({'token' in page.text}), app.js {script}")

            signed = await browser.post("/ops/dashboard/sign-in", data={"token": TOKEN})
            cookie = signed.headers["set-cookie"]
            print(f"signed in: HttpOnly={'HttpOnly' in cookie}, token in cookie={TOKEN in cookie}")
            page = await browser.get("/ops/")
            script = (await browser.get("/ops/dashboard/app.js")).status_code
            print(f"after: the dashboard loads /ops/dashboard/app.js ({script})")

            waits = await browser.get("/ops/api/v1/executions", params={"status": "waiting"})
            print(f"waiting executions listed by the dashboard: {len(waits.json())}")
            sent = await browser.post(
                f"/ops/api/v1/events/{execution_id}/approval",
                json={"by": "grace"},
                headers={"X-Zart-Dashboard": "1"},  # what the dashboard's own calls carry
            )
            print(f"event sent from the dashboard's form: {sent.status_code}")
        print(f"result: {await scheduler.wait(execution_id, timeout=30)}")


if __name__ == "__main__":
    if "--serve" in sys.argv:
        import uvicorn

        uvicorn.run(app, host="127.0.0.1", port=8000)
    else:
        DATABASE.unlink(missing_ok=True)
        asyncio.run(walk_through())
