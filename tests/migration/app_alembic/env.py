"""An application's own alembic environment, as a team using Zart would have it: its own
models, its own version table (alembic's default), and Zart's filter so that autogenerate
leaves Zart's tables to Zart. The test runs it on a connection it passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Column, Integer, MetaData, String, Table

from zart.migrations import app_include_name

target_metadata = MetaData()
Table(
    "users",
    target_metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(200), nullable=False),
)

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=target_metadata,
    include_name=app_include_name(),
)
with context.begin_transaction():
    context.run_migrations()
