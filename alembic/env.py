"""Zart's alembic environment.

Zart runs it on a connection it opened (``config.attributes["connection"]``, see
:mod:`zart.migrations`). Run through the plain ``alembic`` command instead, it builds an engine
from ``sqlalchemy.url``. Either way it only ever touches tables named ``zart_*`` and records its
revision in ``zart_alembic_version``, never in the application's version table.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from zart.database import create_engine, with_schema
from zart.migrations import VERSION_TABLE, include_name, target_metadata
from zart.models import UTCDateTime
from zart.models.base import JSONText

config = context.config
schema: str | None = config.attributes.get("zart_schema")


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # Migrations must not import model code that may change later: render our UTC timestamp
    # as the plain column type it is stored as.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, JSONText):
        return "sa.Text()"
    return False


def _configure(**options: Any) -> None:
    context.configure(
        target_metadata=target_metadata(None),
        version_table=VERSION_TABLE,
        version_table_schema=schema,
        include_name=include_name(None),
        render_item=render_item,
        render_as_batch=True,  # SQLite alters tables by copying them; harmless elsewhere
        compare_type=True,
        **options,
    )


def run_offline() -> None:
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        if schema is not None:
            context.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            context.execute(f'SET search_path TO "{schema}"')
        context.run_migrations()


def run_on(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_with_own_engine() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url, or run migrations through `zart db upgrade`")
    engine = with_schema(create_engine(url), schema)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run_on)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_offline()
elif (connection := config.attributes.get("connection")) is not None:
    run_on(connection)
else:
    asyncio.run(run_with_own_engine())
