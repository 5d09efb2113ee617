"""``create_app(settings)``: the Zart HTTP API as a whole FastAPI app (what ``zart serve``
runs): the router, health checks, the error envelope everywhere, the token in front of
everything but the health checks, CORS for the origins named, and an optional in-process
worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from zart import __version__, metrics
from zart.api.auth import OPEN_PATHS, TokenGate, configured_token
from zart.api.dashboard import OPEN_PATHS as DASHBOARD_PATHS
from zart.api.errors import error_response, install_error_handlers
from zart.api.routes import DEFAULT_MAX_BODY_BYTES, TOTAL_COUNT_HEADER, create_router
from zart.database import DEFAULT_DATABASE_URL
from zart.errors import ConfigurationError
from zart.scheduler import DurableScheduler
from zart.scheduler.observability import scrape
from zart.settings import load_settings

#: Seconds /readyz waits for the database before answering 503.
READY_TIMEOUT = 5.0


@dataclass(frozen=True)
class ApiSettings:
    """How ``create_app`` builds the app. Every field has a ``ZART_*`` default
    (:meth:`from_env`)."""

    database_url: str = DEFAULT_DATABASE_URL
    schema: str | None = None
    #: Bearer token every route but the health checks requires; ``None``: ``ZART_API_TOKEN``;
    #: ``""``: no auth.
    api_token: str | None = None
    #: Origins a browser may call the API from (CORS); ``None``: ``ZART_CORS_ORIGINS``.
    cors_origins: tuple[str, ...] | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: Run a worker for the handlers registered in this process, inside the server.
    with_worker: bool = False
    worker_options: dict[str, float] = field(default_factory=dict)
    #: Serve the web dashboard at ``/`` (behind the token: a sign-in form).
    dashboard: bool = True

    @classmethod
    def from_env(cls) -> ApiSettings:
        """From :class:`zart.Settings` (the ``ZART_*`` variables)."""
        settings = load_settings()
        return cls(
            database_url=settings.database_url,
            schema=settings.database_schema,
            api_token=settings.api_token or "",
            cors_origins=tuple(settings.cors_origins),
        )


def create_app(
    settings: ApiSettings | None = None,
    *,
    scheduler: DurableScheduler | None = None,
    close_scheduler: bool = False,
) -> FastAPI:
    """The Zart HTTP API app: every route of :func:`~zart.api.create_router` and the web
    dashboard at ``/`` (unless ``settings.dashboard`` is false), ``/healthz``
    (the process answers) and ``/readyz`` (the database answers, else 503), the OpenAPI
    document at ``/openapi.json`` (behind the token like every route but the health checks),
    CORS for ``settings.cors_origins``, and the error envelope for every error.

    Give ``scheduler`` to serve one you already have (it stays yours to close, unless
    ``close_scheduler``: then it is closed at shutdown with its engine); otherwise the app
    makes one from ``settings`` and closes it at shutdown.
    """
    settings = settings or ApiSettings.from_env()
    token = configured_token(settings.api_token)
    origins = (
        load_settings().cors_origins if settings.cors_origins is None else settings.cors_origins
    )
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
            served,
            api_token=token or "",
            max_body_bytes=settings.max_body_bytes,
            dashboard=settings.dashboard,
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

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        tags=["health"],
        responses={501: {"description": "prometheus-client is not installed"}},
    )
    async def prometheus_metrics() -> Response:
        """Prometheus metrics (text format): this process's counters and the database's
        gauges. Behind the token like every route but the health checks (a scraper sends
        it as ``authorization: {credentials: ...}``)."""
        try:
            body = await scrape(served)
        except ConfigurationError as exc:
            return error_response(501, "metrics_unavailable", str(exc))
        return Response(body, media_type=metrics.CONTENT_TYPE)

    install_error_handlers(app)
    open_paths = OPEN_PATHS | DASHBOARD_PATHS if settings.dashboard else OPEN_PATHS
    app.add_middleware(TokenGate, token=token, open_paths=open_paths)
    if origins:
        # Outermost: a browser's preflight carries no token, and a 401 needs the CORS headers
        # for the page to read it.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(origins),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=[TOTAL_COUNT_HEADER],
        )
    return app
