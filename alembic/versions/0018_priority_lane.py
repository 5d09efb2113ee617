"""the ready claim's priority lane: a partial index of the executions started with a priority

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 19:40:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

URGENT_WHERE = "priority > 0 AND claimable_at IS NOT NULL"


def _schema() -> str | None:
    # ALTER TABLE is not subject to the connection's schema_translate_map (see 0002).
    schema: str | None = context.config.attributes.get("zart_schema")
    return schema


def upgrade() -> None:
    # Only rows of a priority above 0: a fleet that never sets one has an empty index, and
    # its starts, claims and wake-ups write nothing more.
    op.create_index(
        'ix_zart_executions_urgent', 'zart_executions',
        [sa.column('priority').desc(), 'claimable_at'], schema=_schema(),
        postgresql_where=sa.text(URGENT_WHERE), sqlite_where=sa.text(URGENT_WHERE),
    )


def downgrade() -> None:
    op.drop_index('ix_zart_executions_urgent', table_name='zart_executions', schema=_schema())
