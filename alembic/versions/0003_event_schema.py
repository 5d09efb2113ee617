"""the JSON schema an event wait's model= gives, checked when the event is offered

Revision ID: 0003
Revises: 0005
Create Date: 2026-12-03 08:00:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision: str = '0003'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    # ALTER TABLE is not subject to the connection's schema_translate_map (see 0002).
    schema: str | None = context.config.attributes.get("zart_schema")
    return schema


def upgrade() -> None:
    # Nullable, no default: added without rewriting the table on PostgreSQL and SQLite.
    json = (
        sa.JSON()
        .with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
        .with_variant(sa.Text(), 'sqlite')
    )
    op.add_column('zart_steps', sa.Column('event_schema', json, nullable=True), schema=_schema())


def downgrade() -> None:
    # Not batch mode (see 0002): SQLite >= 3.35 drops an unindexed column in place.
    op.drop_column('zart_steps', 'event_schema', schema=_schema())
