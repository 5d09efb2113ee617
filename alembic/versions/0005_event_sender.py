"""who sent an event

Revision ID: 0005
Revises: 0002
Create Date: 2026-12-02 14:00:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = '0005'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    # ALTER TABLE is not subject to the connection's schema_translate_map (see 0002).
    schema: str | None = context.config.attributes.get("zart_schema")
    return schema


def upgrade() -> None:
    # Nullable, no default: added without rewriting the table on PostgreSQL and SQLite.
    op.add_column(
        'zart_events', sa.Column('sender', sa.String(length=255), nullable=True), schema=_schema()
    )


def downgrade() -> None:
    # Not batch mode (see 0002): SQLite >= 3.35 drops an unindexed column in place.
    op.drop_column('zart_events', 'sender', schema=_schema())
