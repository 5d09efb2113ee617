"""Empty Zart's tables: what ``zart.testing`` does to give each test a clean slate on a
database that tests share (the application's test database)."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection

from zart.models import metadata


async def delete_all_rows(conn: AsyncConnection) -> None:
    """Delete every row of every Zart table (children first), in the caller's transaction.
    The application's tables, and Zart's version table, are not touched."""
    for table in reversed(metadata.sorted_tables):
        await conn.execute(delete(table))
