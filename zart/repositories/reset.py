"""Empty Zart's tables: what ``zart.testing`` does to give each test a clean slate on a
database that tests share (the application's test database)."""

from __future__ import annotations

from sqlalchemy import Table, delete

from zart.models import metadata
from zart.repositories.executors import Backend, Operation
from zart.repositories.statements import Statement


def _delete_all(table: Table) -> Statement:
    return Statement(f"delete_all_{table.name}", lambda _d: delete(table))


#: One ``DELETE`` per Zart table, children first (the foreign keys point at the parents).
DELETE_ALL = tuple(_delete_all(table) for table in reversed(metadata.sorted_tables))


def delete_all_rows(backend: Backend) -> Operation[None]:
    """Delete every row of every Zart table, in one transaction (the executor's). The
    application's tables, and Zart's version table, are not touched."""
    for statement in DELETE_ALL:
        yield statement, {}
