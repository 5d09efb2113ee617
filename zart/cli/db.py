"""``zart db``: create, upgrade, downgrade and check Zart's tables, or print their DDL.

Each command calls one function of :mod:`zart.migrations`. A problem the user can fix (a bad
URL, an unreachable database, an unknown revision) ends the command with one ``error: ...``
line on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, NoReturn, TypeVar

import typer
from alembic.util import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from zart import migrations
from zart.database import DEFAULT_DATABASE_URL, create_engine
from zart.errors import ZartError

__all__ = ["DatabaseUrl", "Schema", "app"]

T = TypeVar("T")

#: How long a failed command waits for aiosqlite's worker threads (see _let_sqlite_threads_stop).
SQLITE_THREAD_GRACE_SECONDS = 1.0

# Shared by every command that opens the database; move to a common module when a second
# sub-app (worker, serve, ...) needs them.
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

app = typer.Typer(help="Create, upgrade and check Zart's tables.", no_args_is_help=True)


@app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Create Zart's tables, or bring them up to REVISION (default: the newest)."""

    async def action(engine: AsyncEngine) -> str | None:
        await migrations.upgrade(engine, revision, schema=schema)
        return await migrations.current_revision(engine, schema=schema)

    typer.echo(_revision_line(_run_on(database_url, action)))


# Unknown options pass through as arguments so that a relative revision such as "-2" is read as
# the REVISION, not as an option.
@app.command(context_settings={"ignore_unknown_options": True})
def downgrade(
    revision: Annotated[
        str, typer.Argument(help='Target revision: "-1" (one back), an id, or "base" (none).')
    ] = "-1",
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Take Zart's tables back to REVISION ("base" drops them all)."""

    async def action(engine: AsyncEngine) -> str | None:
        await migrations.downgrade(engine, revision, schema=schema)
        return await migrations.current_revision(engine, schema=schema)

    typer.echo(_revision_line(_run_on(database_url, action)))


@app.command()
def sql(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    from_revision: Annotated[
        str | None,
        typer.Option("--from", help="Revision the database is at (default: no Zart tables)."),
    ] = None,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
    schema: Schema = None,
) -> None:
    """Print the DDL of an upgrade, for teams that run their own migration tool.

    Nothing connects to the database: the URL only picks the SQL dialect.
    """
    try:
        ddl = migrations.upgrade_sql(
            database_url, revision, schema=schema, from_revision=from_revision
        )
    except (ZartError, CommandError) as exc:
        _fail(str(exc))
    typer.echo(ddl, nl=False)


@app.command()
def check(database_url: DatabaseUrl = DEFAULT_DATABASE_URL, schema: Schema = None) -> None:
    """Check that Zart's tables are at the newest revision and match Zart's models.

    Exit 0 when they are; otherwise say what is pending or different and exit 1.
    """
    result = _run_on(database_url, lambda engine: migrations.check(engine, schema=schema))
    for line in _check_report(result):
        typer.echo(line)
    if not result.ok:
        raise typer.Exit(1)


def _revision_line(current: str | None) -> str:
    head = migrations.head_revision()
    if current is None:
        return "Zart schema at base (no Zart tables)"
    if current == head:
        return f"Zart schema at revision {current} (head)"
    return f"Zart schema at revision {current} (head is {head})"


def _check_report(result: migrations.SchemaCheck) -> Iterator[str]:
    upgrade_hint = "`zart db upgrade` brings it up to date"
    if result.ok:
        yield f"Zart schema is up to date (revision {result.head})."
        return
    if result.current is None:
        yield (
            "Zart's tables have not been created in this database"
            f" (newest revision: {result.head}); {upgrade_hint}."
        )
        return
    if result.current != result.head:
        yield (
            f"Zart schema is at revision {result.current}, not at the newest revision"
            f" {result.head}; {upgrade_hint}."
        )
    else:
        yield f"Zart schema is at revision {result.head} (head) but does not match Zart's models."
    if result.differences:
        yield "Differences between the database and the models:"
        yield from (f"  - {difference}" for difference in result.differences)


def _run_on(url: str, action: Callable[[AsyncEngine], Awaitable[T]]) -> T:
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

    try:
        return asyncio.run(run())
    except (ZartError, CommandError) as exc:
        _fail(str(exc))
    except DBAPIError as exc:
        _fail(f"database error on {_shown(url)}: {exc.orig if exc.orig is not None else exc}")
    except OSError as exc:  # connection refused, unknown host, timeout
        _fail(f"cannot connect to {_shown(url)}: {str(exc) or type(exc).__name__}")


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


def _shown(url: str) -> str:
    """``url`` without its password."""
    return make_url(url).render_as_string(hide_password=True)


def _fail(message: str) -> NoReturn:
    first_line = message.strip().splitlines()[0] if message.strip() else "unknown error"
    typer.echo(f"error: {first_line}", err=True)
    raise typer.Exit(1)
