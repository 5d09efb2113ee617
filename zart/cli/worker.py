"""``zart worker MODULE...``: run a worker for the durable handlers those modules register."""

from __future__ import annotations

import asyncio
import importlib
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from zart.cli.common import DatabaseUrl, Schema, fail, run_reporting_errors
from zart.database import DEFAULT_DATABASE_URL
from zart.runtime.registry import registered_names
from zart.scheduler import DurableScheduler
from zart.worker import freeze_startup_objects


def import_modules(modules: list[str]) -> list[str]:
    """Import each module (from the working directory too, like ``python -m``) so its
    decorators register handlers; return the registered task names."""
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            fail(f"cannot import module {name!r}: {exc}")
    names = registered_names()
    if not names:
        fail(f"no durable handler is registered by {', '.join(modules)}")
    return names


def worker(
    modules: Annotated[
        list[str], typer.Argument(help="Modules whose import registers durable handlers.")
    ],
    concurrency: Annotated[
        int,
        typer.Option(envvar="ZART_CONCURRENCY", min=1, help="Executions run at once."),
    ] = 64,
    lease_timeout: Annotated[
        float,
        typer.Option(
            envvar="ZART_LEASE_TIMEOUT",
            min=0.1,
            help="Seconds a claim lasts without a heartbeat before another worker may take over.",
        ),
    ] = 30.0,
    poll_interval: Annotated[
        float,
        typer.Option(
            envvar="ZART_POLL_INTERVAL", min=0.01, help="Seconds between claims when idle."
        ),
    ] = 0.5,
    shutdown_timeout: Annotated[
        float,
        typer.Option(
            envvar="ZART_SHUTDOWN_TIMEOUT",
            min=0,
            help="Seconds running executions get to finish on SIGINT/SIGTERM.",
        ),
    ] = 30.0,
    claim_ahead: Annotated[
        float,
        typer.Option(
            envvar="ZART_CLAIM_AHEAD",
            min=0,
            help="Seconds before a timer is due that its waiting execution may be claimed and"
            " held, to start it the moment it is due (PostgreSQL; 0: never).",
        ),
    ] = 2.0,
    claim_ahead_limit: Annotated[
        int,
        typer.Option(
            envvar="ZART_CLAIM_AHEAD_LIMIT", min=0, help="At most this many executions held so."
        ),
    ] = 10_000,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Run a worker until SIGINT or SIGTERM, then shut down gracefully.

    Executions still running after the shutdown timeout are handed back to another worker.
    """
    names = import_modules(modules)

    async def serve() -> None:
        async with (
            DurableScheduler(database_url, schema=schema) as scheduler,
            scheduler.run_worker(
                concurrency=concurrency,
                lease_timeout=lease_timeout,
                poll_interval=poll_interval,
                shutdown_timeout=shutdown_timeout,
                claim_ahead=claim_ahead,
                claim_ahead_limit=claim_ahead_limit,
                task_names=names,
            ) as running,
        ):
            # This process is the worker's: what it holds now lives as long as it does.
            freeze_startup_objects()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            typer.echo(
                f"worker {running.worker_id} running {', '.join(names)}"
                f" (concurrency {concurrency}); Ctrl-C stops it",
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

    run_reporting_errors(database_url, serve)
