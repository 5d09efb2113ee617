"""``create_app(settings)``: the Zart HTTP API as a whole FastAPI app (what ``zart serve``
runs): the router, health checks, the error envelope everywhere, a request body limit, and an
optional in-process worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zart import __version__
from zart.api.errors import ApiError, error_response, install_error_handlers
from zart.api.routes import DEFAULT_MAX_BODY_BYTES, create_router
from zart.database import DEFAULT_DATABASE_URL
from zart.scheduler import DurableScheduler
from zart.settings import load_settings

#: Seconds /readyz waits for the database before answering 503.
READY_TIMEOUT = 5.0


@dataclass(frozen=True)
class ApiSettings:
    """How ``create_app`` builds the app. Every field has a ``ZART_*`` default
    (:meth:`from_env`)."""

    database_url: str = DEFAULT_DATABASE_URL
    schema: str | None = None
    #: Bearer token every route but the health checks requires; ``None``: no auth.
    api_token: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: Run a worker for the handlers registered in this process, inside the server.
    with_worker: bool = False
    worker_options: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> ApiSettings:
        """From :class:`zart.Settings` (the ``ZART_*`` variables)."""
        settings = load_settings()
        return cls(
            database_url=settings.database_url,
            schema=settings.database_schema,
            api_token=settings.api_token,
        )


def create_app(
    settings: ApiSettings | None = None,
    *,
    scheduler: DurableScheduler | None = None,
    close_scheduler: bool = False,
) -> FastAPI:
    """The Zart HTTP API app: every route of :func:`~zart.api.create_router`, ``/healthz``
    (the process answers) and ``/readyz`` (the database answers, else 503), the OpenAPI
    document at ``/openapi.json``, and the error envelope for every error.

    Give ``scheduler`` to serve one you already have (it stays yours to close, unless
    ``close_scheduler``: then it is closed at shutdown with its engine); otherwise the app
    makes one from ``settings`` and closes it at shutdown.
    """
    settings = settings or ApiSettings.from_env()
    owned = scheduler is None or close_scheduler
    served = scheduler or DurableScheduler(settings.database_url, schema=settings.schema)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if owned:
                stack.push_async_callback(served.close, dispose_engine=True)
            if settings.with_worker:
                await stack.enter_async_context(
                    served.run_worker(**settings.worker_options)  # type: ignore[arg-type]
                )
            yield

    app = FastAPI(
        title="Zart",
        version=__version__,
        description="Durable executions: start, inspect, wait, cancel, events, admin.",
        lifespan=lifespan,
    )
    app.include_router(
        create_router(
            served, api_token=settings.api_token or "", max_body_bytes=settings.max_body_bytes
        )
    )

    @app.get("/healthz", response_class=PlainTextResponse, tags=["health"])
    async def healthz() -> str:
        """The server answers (no auth)."""
        return "ok"

    @app.get(
        "/readyz",
        response_class=PlainTextResponse,
        tags=["health"],
        responses={503: {"description": "the database is unreachable"}},
    )
    async def readyz() -> Response:
        """The database answers (no auth); 503 when it does not."""
        try:
            async with served.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError):
            return error_response(503, "database_unavailable", "the database is unreachable")
        return PlainTextResponse("ok")

    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413: by ``Content-Length`` before reading,
    and by counting a streamed body as it arrives."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise ApiError(413, "payload_too_large", self._message)
            return message

        await self.app(scope, counted, send)

    @property
    def _message(self) -> str:
        return f"request body over {self.max_bytes} bytes"

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await error_response(413, "payload_too_large", self._message)(scope, receive, send)
