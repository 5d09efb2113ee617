"""The few statements whose SQL differs between PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def is_postgresql(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"


def upsert(conn: AsyncConnection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that supports ``ON CONFLICT`` on the connection's backend."""
    if is_postgresql(conn):
        return postgresql.insert(table)
    return sqlite.insert(table)


def insert_ignoring_conflicts(
    conn: AsyncConnection, table: Table, index_elements: Sequence[str]
) -> postgresql.Insert | sqlite.Insert:
    """``INSERT ... ON CONFLICT (index_elements) DO NOTHING``: a duplicate inserts nothing and,
    unlike a unique violation, leaves the surrounding transaction usable."""
    return upsert(conn, table).on_conflict_do_nothing(index_elements=list(index_elements))
