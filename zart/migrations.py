"""Schema migrations: upgrade, downgrade, print the DDL, check for drift.

Zart's alembic environment travels with the package and keeps its own version table,
``zart_alembic_version``, so it never touches the application's alembic history. All entry
points (``DurableScheduler.migrate()``, ``zart db ...``) come through here: alembic runs on a
connection Zart opened, inside one transaction. On PostgreSQL that transaction first takes an
advisory lock, so several processes upgrading at once run the migrations one after another:
the first applies them, the rest find the schema at head and do nothing.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from zart.database import check_schema, lock_for_migration, parse_url, with_schema
from zart.errors import MigrationError
from zart.models import metadata

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.util.exc import CommandError

# alembic is imported where it is used: every command of the CLI imports this module, and
# only ``zart db`` and ``migrate()`` need alembic (a sixth of the CLI's start-up time).

VERSION_TABLE = "zart_alembic_version"

#: Key of the PostgreSQL advisory lock held while migrating ("zart" in ASCII).
MIGRATION_LOCK_KEY = 0x7A617274


def script_location() -> Path:
    """Where the migration environment is: inside the installed package, or at the top of a
    source checkout (where it lives, next to the package)."""
    here = Path(__file__).resolve().parent
    packaged = here / "alembic"
    if (packaged / "env.py").is_file() and (packaged / "versions").is_dir():
        return packaged
    # Only a source checkout (pyproject.toml beside the package) has it one level up; in an
    # installed environment that path would be the alembic library itself.
    source = here.parent / "alembic"
    if (here.parent / "pyproject.toml").is_file() and (source / "env.py").is_file():
        return source
    raise MigrationError(f"Zart's migration environment was not found next to {here}")


def alembic_config(*, url: str | None = None, schema: str | None = None) -> Config:
    """An alembic ``Config`` for Zart's migrations (no ini file needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location()))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["zart_schema"] = schema
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise MigrationError("no migration revisions found")
    return head


#: Alembic keeps the migration in progress in module globals (``alembic.context``, ``op``):
#: two migrations at once in one process, on two databases or two event loops, would run in
#: each other's context. This lock runs them one at a time; the database lock orders processes.
_ALEMBIC = threading.Lock()


async def _run_locked(
    engine: AsyncEngine, schema: str | None, action: Callable[[Connection], Any]
) -> Any:
    engine = with_schema(engine, schema)  # also validates the schema name
    # Polled, not acquired in a thread: a cancelled wait must not leave the lock taken. (A
    # threading lock has no awaitable; an asyncio one would not cover other event loops.)
    while not _ALEMBIC.acquire(blocking=False):  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    try:
        async with engine.begin() as conn:
            await lock_for_migration(conn, MIGRATION_LOCK_KEY, schema)
            return await conn.run_sync(_explained(action))
    finally:
        _ALEMBIC.release()


def _explained(action: Callable[[Connection], Any]) -> Callable[[Connection], Any]:
    """Alembic's own errors (an unknown revision, a database migrated by a newer Zart) become
    :class:`MigrationError` with a message that says what to do."""

    from alembic.util.exc import CommandError

    def run(connection: Connection) -> Any:
        try:
            return action(connection)
        except CommandError as exc:
            raise MigrationError(_explain(exc)) from exc

    return run


def _explain(exc: CommandError) -> str:
    message = str(exc)
    if "Can't locate revision" in message:
        return (
            f"{message}. If the database names a revision this Zart does not know, it was"
            " migrated by a newer version of Zart: upgrade Zart rather than the database"
        )
    return message


def _with_connection(config: Config, connection: Connection) -> Config:
    config.attributes["connection"] = connection
    return config


async def upgrade(
    engine: AsyncEngine, revision: str = "head", *, schema: str | None = None
) -> None:
    """Upgrade Zart's tables to ``revision`` (default: the newest)."""

    from alembic import command

    def action(connection: Connection) -> None:
        command.upgrade(_with_connection(alembic_config(schema=schema), connection), revision)

    await _run_locked(engine, schema, action)


async def downgrade(
    engine: AsyncEngine, revision: str = "-1", *, schema: str | None = None
) -> None:
    """Downgrade Zart's tables to ``revision`` (``base`` removes them all)."""

    from alembic import command

    def action(connection: Connection) -> None:
        command.downgrade(_with_connection(alembic_config(schema=schema), connection), revision)

    await _run_locked(engine, schema, action)


def is_behind(revision: str) -> bool:
    """Whether ``revision`` is one of this Zart's revisions before its head (a database that
    ``zart db upgrade`` would change). A revision this Zart does not know is not behind: a
    newer Zart migrated it, and its additions are of no concern to this one."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    known = {r.revision for r in script.walk_revisions()}
    return revision in known and revision != script.get_current_head()


async def current_revision(engine: AsyncEngine, *, schema: str | None = None) -> str | None:
    """The revision the database is at, or ``None`` when Zart's tables were never created."""
    from alembic.runtime.migration import MigrationContext

    def action(connection: Connection) -> str | None:
        context = MigrationContext.configure(
            connection, opts={"version_table": VERSION_TABLE, "version_table_schema": schema}
        )
        return context.get_current_revision()

    async with with_schema(engine, schema).connect() as conn:
        return await conn.run_sync(action)


def upgrade_sql(
    url: str, revision: str = "head", *, schema: str | None = None, from_revision: str | None = None
) -> str:
    """The DDL an upgrade would run, for teams that apply migrations with their own tools."""
    from alembic import command
    from alembic.util.exc import CommandError

    parsed = parse_url(url)
    check_schema(schema, parsed.get_backend_name())
    config = alembic_config(url=parsed.render_as_string(hide_password=False), schema=schema)
    target = revision if from_revision is None else f"{from_revision}:{revision}"
    buffer = io.StringIO()
    config.output_buffer = buffer
    with _ALEMBIC, redirect_stdout(io.StringIO()):
        try:
            command.upgrade(config, target, sql=True)
        except CommandError as exc:
            raise MigrationError(_explain(exc)) from exc
    return buffer.getvalue()


@dataclass(frozen=True, slots=True)
class SchemaCheck:
    """How the database compares to this version of Zart."""

    current: str | None
    head: str
    differences: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.current == self.head and not self.differences


def target_metadata(schema: str | None) -> MetaData:
    """The models as they should appear in ``schema``."""
    if schema is None:
        return metadata
    placed = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        table.to_metadata(placed, schema=schema)
    return placed


def include_name(schema: str | None) -> Callable[[str | None, str, Any], bool]:
    """Alembic filter: only Zart's own tables (and schema), never the application's."""

    def include(name: str | None, type_: str, parent_names: Any) -> bool:
        if type_ == "schema":
            return name == schema
        if type_ == "table":
            return name is not None and name.startswith("zart_") and name != VERSION_TABLE
        return True

    return include


def app_include_name(schema: str | None = None) -> Callable[[str | None, str, Any], bool]:
    """An alembic ``include_name`` filter for the *application's* ``env.py``.

    ``context.configure(..., include_name=zart.migrations.app_include_name())`` makes the
    application's autogenerate skip Zart's tables (``zart_*``, Zart's version table included),
    which Zart migrates itself; given Zart's ``schema``, that whole schema is skipped too (only
    relevant with ``include_schemas=True``). Everything else is included.
    """

    def include(name: str | None, type_: str, parent_names: Any) -> bool:
        if type_ == "schema":
            return schema is None or name != schema
        if type_ == "table":
            return name is None or not name.startswith("zart_")
        return True

    return include


async def check(engine: AsyncEngine, *, schema: str | None = None) -> SchemaCheck:
    """Compare the database with the models: its revision and any difference autogenerate
    finds (a hand-edited table, a missing index)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    head = head_revision()

    def action(connection: Connection) -> SchemaCheck:
        context = MigrationContext.configure(
            connection,
            opts={
                "version_table": VERSION_TABLE,
                "version_table_schema": schema,
                "include_name": include_name(schema),
                "include_schemas": schema is not None,
                "compare_type": True,
                "target_metadata": target_metadata(schema),
            },
        )
        current = context.get_current_revision()
        diffs = compare_metadata(context, target_metadata(schema))
        return SchemaCheck(current=current, head=head, differences=tuple(map(str, diffs)))

    with_schema(engine, schema)  # validates the schema for this backend
    async with engine.connect() as conn:
        return await conn.run_sync(action)
