"""``zart worker MODULE...`` / ``zart worker --app MODULE:ATTR``: run a worker for the durable
handlers those modules register, on the database of the settings or of the application's
own :class:`~zart.DurableScheduler`."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import Annotated

import typer

from zart import metrics
from zart.cli.common import (
    App,
    DatabaseUrl,
    LogFormatOption,
    LogLevel,
    Schema,
    WaitForDatabase,
    configure_logging,
    fail,
    import_module,
    load_app,
    parse_wait,
    require_schema,
    require_sqlite_file,
    run_reporting_errors,
    shown_url,
)
from zart.database import DEFAULT_DATABASE_URL
from zart.runtime.registry import registered_names
from zart.scheduler import DurableScheduler
from zart.worker import collect_less_often, freeze_startup_objects

Modules = Annotated[
    list[str] | None,
    typer.Argument(
        help="Modules whose import registers durable handlers (with --app: more of them).",
        show_default=False,
    ),
]


def import_modules(modules: list[str]) -> list[str]:
    """Import each module (from the working directory too, like ``python -m``) so its
    decorators register handlers; return the registered task names."""
    for name in modules:
        import_module(name)
    names = registered_names()
    if not names:
        fail(f"no durable handler is registered by {', '.join(modules)}")
    return names


def app_or_url(
    context: typer.Context,
    app: str | None,
    modules: list[str] | None,
    database_url: str,
    schema: str | None,
) -> DurableScheduler:
    """The scheduler a command runs on: the application's (``--app``), else one on
    ``database_url``. The application's scheduler names its database itself, so a
    ``--database-url`` or ``--schema`` given on the command line beside ``--app`` is refused
    (the environment's ``ZART_DATABASE_URL`` is the app's to read)."""
    if app is None:
        if not modules:
            fail("give MODULES whose import registers durable handlers, or --app MODULE:ATTR")
        import_modules(modules)
        return DurableScheduler(database_url, schema=schema)
    for option, flag in (("database_url", "--database-url"), ("schema", "--schema")):
        source = context.get_parameter_source(option)
        if source is not None and source.name == "COMMANDLINE":
            fail(f"--app and {flag}: the application's scheduler names its database itself")
    scheduler = load_app(app)
    if modules:
        import_modules(modules)
    elif not registered_names():
        fail(f"no durable handler is registered by importing {app.partition(':')[0]}")
    return scheduler


def worker(
    context: typer.Context,
    modules: Modules = None,
    app: App = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Executions run at once (default: ZART_CONCURRENCY, else 64).",
            show_default=False,
        ),
    ] = None,
    lease_timeout: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            help="Seconds a claim lasts without a heartbeat before another worker may take over"
            " (default: ZART_LEASE_TIMEOUT, else 30).",
            show_default=False,
        ),
    ] = None,
    poll_interval: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            help="Seconds between claims when idle (default: ZART_POLL_INTERVAL, else 0.5).",
            show_default=False,
        ),
    ] = None,
    shutdown_timeout: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Seconds running executions get to finish on SIGINT/SIGTERM"
            " (default: ZART_SHUTDOWN_TIMEOUT, else 30).",
            show_default=False,
        ),
    ] = None,
    claim_ahead: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Seconds before a timer is due that its waiting execution may be claimed and"
            " held, to start it the moment it is due (PostgreSQL; 0: never; default:"
            " ZART_CLAIM_AHEAD, else 2).",
            show_default=False,
        ),
    ] = None,
    claim_ahead_limit: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="At most this many executions held so (default: ZART_CLAIM_AHEAD_LIMIT,"
            " else 10000).",
            show_default=False,
        ),
    ] = None,
    max_claims: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Claims in a row that may end without a report (the worker died or lost its"
            " lease mid-run) before the next one fails the execution as a crash loop, for"
            " handlers that set no max_claims of their own (default: ZART_MAX_CLAIMS, else 5).",
            show_default=False,
        ),
    ] = None,
    retention: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="Also delete finished executions this long after they finished (e.g. 30d),"
            " for handlers without a retention of their own (default: ZART_RETENTION, else"
            " never).",
            show_default=False,
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            envvar="ZART_METRICS_PORT",
            min=1,
            max=65535,
            help="Serve this worker's Prometheus metrics at http://HOST:PORT/metrics (needs"
            " the metrics extra; default: ZART_METRICS_PORT, else none).",
            show_default=False,
        ),
    ] = None,
    metrics_host: Annotated[
        str,
        typer.Option(
            envvar="ZART_METRICS_HOST",
            help="Address the --metrics-port server binds (0.0.0.0 for a scraper on another"
            " machine).",
        ),
    ] = "127.0.0.1",
    queue: Annotated[
        list[str] | None,
        typer.Option(
            "--queue",
            metavar="NAME",
            help="Claim only from this queue (repeatable; default: ZART_QUEUES, else every queue).",
            show_default=False,
        ),
    ] = None,
    wait_for_database: WaitForDatabase = None,
    log_level: LogLevel = None,
    log_format: LogFormatOption = None,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Run a worker until SIGINT or SIGTERM, then shut down gracefully.

    With --app, the worker runs on the application's DurableScheduler: its
    engine (pool, connect_args), schema, settings and the handlers its
    import registers. Options not given come from its zart.Settings
    (ZART_* variables). Executions still running after the shutdown
    timeout are handed back to another worker.
    """
    if metrics_port is not None and not metrics.available():
        fail(f"--metrics-port needs prometheus-client: pip install '{metrics.EXTRA}'")
    scheduler = app_or_url(context, app, modules, database_url, schema)
    configure_logging(scheduler, log_level, log_format)  # after the app's import
    names = registered_names()

    async def serve() -> None:
        async with (
            contextlib.aclosing(_Closing(scheduler)),
            # Options not given (None) come from the scheduler's settings.
            scheduler.run_worker(
                concurrency=concurrency,
                lease_timeout=lease_timeout,
                poll_interval=poll_interval,
                shutdown_timeout=shutdown_timeout,
                claim_ahead=claim_ahead,
                claim_ahead_limit=claim_ahead_limit,
                max_claims=max_claims,
                retention=retention,
                task_names=names,
                queues=queue or None,
            ) as running,
        ):
            # This process is the worker's: what it holds now lives as long as it does, and
            # its garbage collector is tuned for crowds of runs.
            freeze_startup_objects()
            collect_less_often()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            typer.echo(
                f"worker {running.worker_id} on {shown_url(scheduler)} running"
                f" {', '.join(names)} (concurrency {running.settings.concurrency})"
                f"{_metrics_line(metrics_port, metrics_host)}; Ctrl-C stops it",
                err=True,
            )
            stopped = asyncio.create_task(running.wait_stopped(), name="zart-worker-stopped")
            signalled = asyncio.create_task(stop.wait(), name="zart-worker-signal")
            await asyncio.wait({stopped, signalled}, return_when=asyncio.FIRST_COMPLETED)
            signalled.cancel()
            if stopped.done():
                stopped.result()  # re-raises when one of the worker's loops died
            else:
                stopped.cancel()
            typer.echo("stopping: waiting for running executions", err=True)

    stop_metrics = _serve_metrics(metrics_port, metrics_host)  # a port in use: said first
    try:
        require_sqlite_file(scheduler.engine.url.render_as_string(hide_password=False))
        wait = parse_wait(wait_for_database)
        run_reporting_errors(shown_url(scheduler), lambda: require_schema(scheduler, wait))
        run_reporting_errors(shown_url(scheduler), serve)
    finally:
        if stop_metrics is not None:
            stop_metrics()


def _serve_metrics(port: int | None, host: str) -> Callable[[], None] | None:
    """``--metrics-port``: serve this process's metrics while the worker runs (what stops
    it). A port that cannot be bound is a clear error before the worker starts."""
    if port is None:
        return None
    try:
        return metrics.serve(port, host)
    except OSError as exc:
        fail(f"--metrics-port {port}: cannot serve metrics on {host}:{port}: {exc}")


def _metrics_line(port: int | None, host: str) -> str:
    return "" if port is None else f", metrics on http://{host}:{port}/metrics"


class _Closing:
    """Closes the scheduler when the worker ends, with its engine: the process ends here, so
    the application's engine, which its scheduler only borrows, goes too."""

    def __init__(self, scheduler: DurableScheduler) -> None:
        self._scheduler = scheduler

    async def aclose(self) -> None:
        await self._scheduler.close(dispose_engine=True)
