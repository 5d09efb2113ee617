"""What every ``zart`` command shares: the database options and the one-line error exit."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from zart.database import create_engine, mask_url
from zart.durations import format_duration, parse_duration
from zart.errors import InvalidName, SchemaMissing, SchemaOutdated, ZartError
from zart.logs import LOG_FORMATS, LOG_LEVELS, configure, log
from zart.migrations import VERSION_TABLE, current_revision, head_revision, is_behind
from zart.models.names import parse_tags
from zart.outages import is_transient, retry_delay
from zart.scheduler import DurableScheduler
from zart.wire import utc_instant
from zart.worker import event_loop_factory

T = TypeVar("T")

#: How long a failed command waits for aiosqlite's worker threads (see _let_sqlite_threads_stop).
SQLITE_THREAD_GRACE_SECONDS = 1.0

DatabaseUrl = Annotated[
    str,
    typer.Option(
        "--database-url",
        envvar="ZART_DATABASE_URL",
        help="SQLAlchemy URL of the database (postgresql+asyncpg://... or sqlite+aiosqlite:///...).",
    ),
]
Schema = Annotated[
    str | None,
    typer.Option(
        "--schema",
        envvar="ZART_SCHEMA",
        help="PostgreSQL schema holding Zart's tables (default: the connection's search path).",
    ),
]
WaitForDatabase = Annotated[
    str | None,
    typer.Option(
        "--wait-for-database",
        envvar="ZART_WAIT_FOR_DATABASE",
        metavar="DURATION",
        help="At start, wait this long (e.g. 2m) for a database that cannot be reached yet"
        " (starting, failing over, a container not up), retrying, instead of exiting at once"
        " (default: exit at once).",
        show_default=False,
    ),
]
LogLevel = Annotated[
    str | None,
    typer.Option(
        "--log-level",
        help="Log records at this level and above on stderr: DEBUG, INFO, WARNING, ERROR"
        " (default: ZART_LOG_LEVEL, else INFO). Not used when the application configured"
        " logging itself.",
        show_default=False,
    ),
]
LogFormatOption = Annotated[
    str | None,
    typer.Option(
        "--log-format",
        help="text (one line per record) or json (one object per line; default:"
        " ZART_LOG_FORMAT, else text).",
        show_default=False,
    ),
]
App = Annotated[
    str | None,
    typer.Option(
        "--app",
        envvar="ZART_APP",
        metavar="MODULE:ATTR",
        help="The application's DurableScheduler (e.g. myapp.zart:scheduler), or a function"
        " returning one: its engine, pool, schema, settings and handlers are used.",
        show_default=False,
    ),
]
JsonOutput = Annotated[
    bool,
    typer.Option(
        "--json",
        envvar="ZART_JSON",
        help="Print JSON for scripts (camelCase, the HTTP API's shapes) instead of text.",
    ),
]


Tags = Annotated[
    list[str] | None,
    typer.Option(
        "--tag",
        metavar="KEY=VALUE",
        help="A tag (repeatable), e.g. --tag tenant=acme.",
        show_default=False,
    ),
]


TagFilter = Annotated[
    list[str] | None,
    typer.Option(
        "--tag",
        metavar="KEY=VALUE",
        help="Only executions carrying this tag (repeatable: all of them).",
        show_default=False,
    ),
]


def parse_instant(text: str) -> datetime:
    """A ``--from`` / ``--to`` time: ISO 8601, UTC unless it names its offset."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 time (e.g. 2030-01-31 or 2030-01-31T08:00:00+02:00)"
        ) from None
    try:
        return utc_instant(when if when.tzinfo is not None else when.replace(tzinfo=UTC))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


CreatedFrom = Annotated[
    datetime | None,
    typer.Option(
        "--from",
        parser=parse_instant,
        metavar="TIME",
        help="Only executions created at or after TIME (ISO 8601; UTC unless it says).",
        show_default=False,
    ),
]
CreatedTo = Annotated[
    datetime | None,
    typer.Option(
        "--to",
        parser=parse_instant,
        metavar="TIME",
        help="Only executions created at or before TIME.",
        show_default=False,
    ),
]


def parse_tag_options(items: list[str] | None) -> dict[str, str]:
    """``--tag KEY=VALUE`` options as tags, or one ``error:`` line naming the bad one."""
    try:
        return parse_tags(items or (), "=", "--tag")
    except InvalidName as exc:
        fail(str(exc))


def run_on(url: str, action: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run ``action`` on an engine for ``url``, turning the errors a user can fix into one
    ``error:`` line and exit code 1."""

    async def run() -> T:
        engine = create_engine(url)
        try:
            return await action(engine)
        except Exception:
            await _let_sqlite_threads_stop()
            raise
        finally:
            await engine.dispose()

    return run_reporting_errors(url, run)


def run_on_scheduler(
    url: str, schema: str | None, action: Callable[[DurableScheduler], Awaitable[T]]
) -> T:
    """Run ``action`` with a :class:`DurableScheduler` on ``url``, reporting the errors a user
    can fix as one ``error:`` line and exit code 1.

    A SQLite file that does not exist is such an error: opening it would create an empty
    database, which no command but ``zart db upgrade`` should do.
    """
    require_sqlite_file(url)

    async def run() -> T:
        scheduler = DurableScheduler(url, schema=schema)
        try:
            return await action(scheduler)
        except Exception:
            await _let_sqlite_threads_stop()
            raise
        finally:
            await scheduler.close()

    return run_reporting_errors(url, run)


def load_app(target: str) -> DurableScheduler:
    """The application's :class:`DurableScheduler` named ``MODULE:ATTR`` (an instance, or a
    function taking no argument that returns one), imported from the working directory too;
    one ``error:`` line when it cannot be had."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        fail(f"--app takes MODULE:ATTR (e.g. myapp.zart:scheduler), not {target!r}")
    try:
        found: Any = import_module(module_name, "the --app module")
        for part in attribute.split("."):
            try:
                found = getattr(found, part)
            except AttributeError:
                fail(f"--app {target}: module {module_name!r} has no attribute {attribute!r}")
        if inspect.isroutine(found) and _takes_nothing(found):  # a factory
            found = found()
    except ZartError as exc:  # the application's settings or handlers do not fit
        fail(f"--app {target}: {exc}")
    if not isinstance(found, DurableScheduler):
        kind = type(found).__name__
        article = "an" if kind[:1].lower() in "aeiou" else "a"
        fail(f"--app {target} is {article} {kind}, not a zart.DurableScheduler")
    return found


def _takes_nothing(function: Callable[..., Any]) -> bool:
    try:
        inspect.signature(function).bind()
    except TypeError:
        return False
    except ValueError:  # no signature to read (a builtin): let the call say
        return True
    return True


def import_module(name: str, what: str = "module") -> ModuleType:
    """Import ``name`` (from the working directory too, like ``python -m``), or one
    ``error:`` line."""
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        fail(f"cannot import {what} {name!r}: {exc}")
    except ZartError:  # the module's own handlers or settings do not fit: the caller says
        raise
    except Exception as exc:  # the module's import raised: say which module, and what
        fail(f"cannot import {what} {name!r}: it raised {type(exc).__name__}: {exc}")


def parse_json(text: str, what: str = "payload") -> Any:
    """``text`` as JSON, or one ``error:`` line naming ``what`` is wrong with it."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"the {what} is not valid JSON: {exc}")


def run_reporting_errors(url: str, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run(main())`` on the worker process's loop
    (:func:`zart.worker.event_loop_factory`: uvloop's where installed), with the errors a user
    can fix reported as one line."""
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            return runner.run(main())
    except ZartError as exc:
        fail(str(exc))
    except DBAPIError as exc:
        fail(f"database error on {mask_url(url)}: {exc.orig if exc.orig is not None else exc}")
    except OSError as exc:  # connection refused, unknown host, timeout
        fail(f"cannot connect to {mask_url(url)}: {str(exc) or type(exc).__name__}")


async def _let_sqlite_threads_stop() -> None:
    """Give aiosqlite's worker threads time to stop while the event loop still runs.

    When a SQLite file cannot be opened, aiosqlite (0.22) asks the connection's worker thread to
    stop without waiting for it; if ``asyncio.run`` closes the loop first, the thread dies with
    "Event loop is closed" and prints a traceback after our one-line error
    (omnilib/aiosqlite#241). Such a thread stops within milliseconds once the loop lets it.
    """
    for thread in threading.enumerate():
        if thread.name.endswith("(_connection_worker_thread)"):
            await asyncio.to_thread(thread.join, SQLITE_THREAD_GRACE_SECONDS)


def require_sqlite_file(url: str) -> None:
    """One ``error:`` line when ``url`` names a SQLite file that does not exist: opening it
    would create an empty database, which no command but ``zart db upgrade`` should do."""
    try:
        parsed = make_url(url)
    except Exception:  # reported with the rest when the engine is created
        return
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:":
        return
    if not path.startswith("file:") and not Path(path).exists():
        fail(f"no SQLite database at {path}; `zart db upgrade` creates one")


def shown_url(scheduler: DurableScheduler) -> str:
    """The URL of the scheduler's database, without its password, for error lines."""
    return mask_url(scheduler.engine.url)


def fail(message: str) -> NoReturn:
    first_line = message.strip().splitlines()[0] if message.strip() else "unknown error"
    typer.echo(f"error: {first_line}", err=True)
    raise typer.Exit(1)


def dumps(document: BaseModel) -> str:
    """What ``--json`` prints: a wire document (:mod:`zart.wire`), the HTTP API's shape."""
    return json.dumps(document.model_dump(mode="json", by_alias=True), ensure_ascii=False, indent=2)


def configure_logging(
    scheduler: DurableScheduler, level: str | None, log_format: str | None
) -> None:
    """``--log-level`` / ``--log-format``, else the scheduler's settings (``ZART_LOG_*``):
    records on stderr, unless the application (imported by now) configured logging."""
    chosen_level = (level or scheduler.settings.log_level).upper()
    chosen_format = log_format or scheduler.settings.log_format
    if chosen_level not in LOG_LEVELS:
        fail(f"--log-level must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    if chosen_format not in LOG_FORMATS:
        fail(f"--log-format must be text or json, not {log_format!r}")
    configure(chosen_level, chosen_format)


async def require_schema(scheduler: DurableScheduler, wait: timedelta | None = None) -> None:
    """Refuse to serve a database without Zart's tables, or with tables an older Zart made,
    once, before the server starts: its worker would fail at start-up in a traceback, and
    every route answer 503 (or fail at the first statement that meets a missing column). One
    query; the engine's connections are then let go, since they belong to this event loop,
    not to the server's. With ``wait``, a database that cannot be reached (a transient error,
    as a running worker judges one) is asked again with the workers' back-off until it
    answers or ``wait`` has passed; a database that answers with a problem is reported at
    once."""
    alembic = logging.getLogger("alembic")
    level = alembic.level
    alembic.setLevel(logging.WARNING)  # reading the revision logs two lines at INFO
    try:
        revision = await _revision_when_reachable(scheduler, wait)
        if revision is None:
            raise SchemaMissing(VERSION_TABLE, shown_url(scheduler), scheduler.schema)
        if is_behind(revision):
            raise SchemaOutdated(
                None,
                None,
                shown_url(scheduler),
                scheduler.schema,
                revision=revision,
                head=head_revision(),
            )
    finally:
        alembic.setLevel(level)
        await scheduler.engine.dispose()


async def _revision_when_reachable(
    scheduler: DurableScheduler, wait: timedelta | None
) -> str | None:
    deadline = time.monotonic() + (wait.total_seconds() if wait is not None else 0.0)
    failures = 0
    while True:
        try:
            revision = await current_revision(scheduler.engine, schema=scheduler.schema)
        except Exception as exc:
            left = deadline - time.monotonic()
            if wait is None or left <= 0 or not is_transient(exc):
                raise
            failures += 1
            if failures == 1:
                log(
                    "database_waiting",
                    f"cannot reach {shown_url(scheduler)} yet; retrying for up to"
                    f" {format_duration(wait)}",
                    level=logging.WARNING,
                    error=str(exc) or type(exc).__name__,
                )
            await asyncio.sleep(min(retry_delay(failures), left))
            continue
        if failures:
            log("database_reached", f"reached {shown_url(scheduler)} after {failures} tries")
        return revision


def parse_wait(text: str | None) -> timedelta | None:
    """``--wait-for-database``'s value, or a one-line error naming it."""
    if text is None:
        return None
    try:
        return parse_duration(text, name="--wait-for-database")
    except ZartError as exc:
        fail(str(exc))
