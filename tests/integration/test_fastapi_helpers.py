"""zart.api.lifespan and zart.api.session_scheduler inside an application's own FastAPI app:
the lifespan migrates, runs a worker with the options given and closes; the dependency binds
start and offer_event to the request's session, so they commit or roll back with it."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations, whose
# dependencies are local to application().
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import zart
import zart.api
from zart.database import create_engine


@zart.durable("helpers-approval")
async def approval(name: str) -> str:
    return f"{name}: {await zart.wait_for_event('decision')}"


def application(
    scheduler: zart.DurableScheduler, sessions: async_sessionmaker[AsyncSession]
) -> FastAPI:
    async def get_session() -> AsyncIterator[AsyncSession]:
        async with sessions() as session:
            yield session

    durable = zart.api.session_scheduler(scheduler, get_session)
    app = FastAPI(lifespan=zart.api.lifespan(scheduler, migrate=True, worker={"concurrency": 3}))

    @app.post("/start/{name}")
    async def start(
        name: str,
        session: Annotated[AsyncSession, Depends(get_session)],
        bound: Annotated[zart.api.SessionScheduler, Depends(durable)],
        commit: bool = True,
    ) -> dict[str, str]:
        assert bound.session is session  # one session per request, shared
        execution_id = await bound.start(approval, name, execution_id=f"approval-{name}")
        await (session.commit() if commit else session.rollback())
        return {"execution_id": execution_id}

    @app.post("/decide/{execution_id}")
    async def decide(
        execution_id: str,
        session: Annotated[AsyncSession, Depends(get_session)],
        bound: Annotated[zart.api.SessionScheduler, Depends(durable)],
        commit: bool = True,
    ) -> dict[str, str]:
        await bound.offer_event(execution_id, "decision", "yes", sender="the-api")
        await (session.commit() if commit else session.rollback())
        return {"status": (await bound.status(execution_id)).status.value}

    return app


async def test_the_lifespan_and_the_request_bound_scheduler(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    scheduler = zart.DurableScheduler(engine=engine, inline_wait_limit=0)
    app = application(scheduler, async_sessionmaker(engine, expire_on_commit=False))
    try:
        async with (
            app.router.lifespan_context(app),  # migrates the empty database, starts the worker
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as http,
        ):
            [worker] = scheduler.workers
            assert worker.settings.concurrency == 3

            rolled_back = await http.post("/start/bob", params={"commit": "false"})
            assert rolled_back.status_code == 200, rolled_back.text
            assert (await scheduler.list_executions()).total == 0  # nothing started

            started = (await http.post("/start/ada")).json()["execution_id"]
            await http.post(f"/decide/{started}", params={"commit": "false"})
            detail = await scheduler.execution_detail(started)
            assert detail.events == ()  # the offer rolled back with the request

            await http.post(f"/decide/{started}")
            assert await scheduler.wait(started, timeout=10) == "ada: yes"
            [event] = (await scheduler.execution_detail(started)).events
            assert event.sender == "the-api"
        assert scheduler.workers == ()  # stopped at shutdown
        with_engine_open = await engine.connect()  # the borrowed engine stays the app's
        await with_engine_open.close()
    finally:
        await engine.dispose()
