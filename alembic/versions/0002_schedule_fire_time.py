"""schedule fire time on executions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 03:10:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    # ALTER TABLE is not subject to the connection's schema_translate_map (CREATE TABLE is):
    # name the schema Zart was asked to use (zart.migrations puts it in the config).
    schema: str | None = context.config.attributes.get("zart_schema")
    return schema


def upgrade() -> None:
    # A nullable column with no default: PostgreSQL and SQLite add it without rewriting the
    # table, so the upgrade is instant however many executions are stored.
    op.add_column(
        'zart_executions',
        sa.Column('fire_time', sa.DateTime(timezone=True), nullable=True),
        schema=_schema(),
    )


def downgrade() -> None:
    # Not batch mode: on SQLite a batch drop copies the table, and dropping the old
    # zart_executions would cascade to every run, step and event (foreign_keys=ON).
    # SQLite >= 3.35 drops an unindexed column in place.
    op.drop_column('zart_executions', 'fire_time', schema=_schema())
