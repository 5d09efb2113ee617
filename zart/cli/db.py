"""``zart db``: create, upgrade, downgrade and check Zart's tables, or print their DDL.

Each command calls one function of :mod:`zart.migrations`. A problem the user can fix (a bad
URL, an unreachable database, an unknown revision) ends the command with one ``error: ...``
line on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from zart import migrations
from zart.cli.common import DatabaseUrl, Schema, fail, run_on
from zart.database import DEFAULT_DATABASE_URL
from zart.errors import ZartError

__all__ = ["app"]

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

    typer.echo(_revision_line(run_on(database_url, action)))


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

    typer.echo(_revision_line(run_on(database_url, action)))


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
    except ZartError as exc:
        fail(str(exc))
    typer.echo(ddl, nl=False)


@app.command()
def check(database_url: DatabaseUrl = DEFAULT_DATABASE_URL, schema: Schema = None) -> None:
    """Check that Zart's tables are at the newest revision and match Zart's models.

    Exit 0 when they are; otherwise say what is pending or different and exit 1.
    """
    result = run_on(database_url, lambda engine: migrations.check(engine, schema=schema))
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
