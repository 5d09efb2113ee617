"""``zart serve MODULE...``: the HTTP API (and optionally a worker) in one process."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

import typer

from zart.cli.common import (
    App,
    DatabaseUrl,
    LogFormatOption,
    LogLevel,
    Schema,
    WaitForDatabase,
    configure_logging,
    fail,
    parse_wait,
    require_schema,
    require_sqlite_file,
    run_reporting_errors,
    shown_url,
)
from zart.cli.worker import Modules, app_or_url
from zart.database import DEFAULT_DATABASE_URL
from zart.scheduler import DurableScheduler

#: Seconds a stopping server waits for open requests (a long ``wait``, say) before it cuts
#: them, rather than holding the shutdown for ever. Streams end at once (see below).
SHUTDOWN_GRACE = 5


def stopping_server(server: type[Any], scheduler: DurableScheduler) -> type[Any]:
    """uvicorn's ``Server`` that, told to stop, first ends the open streams' server-sent
    events (``DurableScheduler.stop_streaming``): their clients reconnect and resume by
    ``Last-Event-ID``, and the shutdown does not wait for answers that never end."""

    class StoppingServer(server):  # type: ignore[misc]
        async def shutdown(self, sockets: Any = None) -> None:
            scheduler.stop_streaming()
            await super().shutdown(sockets)

    return StoppingServer


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    context: typer.Context,
    modules: Modules = None,
    app: App = None,
    host: Annotated[
        str, typer.Option(envvar="ZART_HOST", help="Address to bind (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="ZART_PORT", min=0, max=65535)] = 8000,
    with_worker: Annotated[
        bool,
        typer.Option(
            "--with-worker", envvar="ZART_WITH_WORKER", help="Also run a worker in this process."
        ),
    ] = False,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Allow a non-loopback bind without ZART_API_TOKEN (anyone who can reach it"
            " can start, cancel and restart executions).",
        ),
    ] = False,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--cors-origin",
            help="An origin browsers may call the API from (repeatable; default:"
            " ZART_CORS_ORIGINS, comma-separated).",
        ),
    ] = None,
    wait_for_database: WaitForDatabase = None,
    log_level: LogLevel = None,
    log_format: LogFormatOption = None,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Serve the HTTP API until SIGINT or SIGTERM.

    With --app, it serves the application's DurableScheduler (its engine,
    schema and settings).

    Every route but /healthz and /readyz requires 'Authorization: Bearer $ZART_API_TOKEN' when
    ZART_API_TOKEN is set. A non-loopback --host needs a token (or --insecure).
    """
    try:
        import uvicorn

        from zart.api import ApiSettings, create_app
    except ImportError as exc:  # pragma: no cover - depends on the installation
        fail(
            "zart serve needs FastAPI and uvicorn, the api extra (pip install fastapi uvicorn):"
            f" {exc}"
        )
    scheduler = app_or_url(context, app, modules, database_url, schema)
    configure_logging(scheduler, log_level, log_format)  # after the app's import
    token = scheduler.settings.api_token  # ZART_API_TOKEN, unless the app's settings say
    if token is None and not is_loopback(host) and not insecure:
        fail(
            f"refusing to serve on {host} without ZART_API_TOKEN; set a token, bind 127.0.0.1,"
            " or pass --insecure"
        )
    wait = parse_wait(wait_for_database)
    require_sqlite_file(scheduler.engine.url.render_as_string(hide_password=False))
    run_reporting_errors(shown_url(scheduler), lambda: require_schema(scheduler, wait))
    settings = ApiSettings(
        database_url=scheduler.settings.database_url,
        schema=scheduler.schema,
        api_token=token or "",
        cors_origins=tuple(cors_origin) if cors_origin else scheduler.settings.cors_origins,
        with_worker=with_worker,
    )
    # The process ends with the server: the scheduler (and an app's engine) close with it.
    served = create_app(settings, scheduler=scheduler, close_scheduler=True)
    typer.echo(
        f"serving the Zart API on http://{host}:{port}"
        f"{' with a worker' if with_worker else ''}{'' if token else ' (no auth)'}",
        err=True,
    )
    config = uvicorn.Config(
        served,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
    )
    stopping_server(uvicorn.Server, scheduler)(config).run()
