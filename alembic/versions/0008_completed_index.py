"""an index of finished executions by completion time (retention)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 12:50:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    schema: str | None = context.config.attributes.get("zart_schema")
    return schema


def upgrade() -> None:
    # Finished rows only: pruning reads the oldest first; running ones are never in it.
    op.create_index(
        'ix_zart_executions_completed', 'zart_executions', ['completed_at'], unique=False,
        schema=_schema(), postgresql_where=sa.text('completed_at IS NOT NULL'),
        sqlite_where=sa.text('completed_at IS NOT NULL'),
    )


def downgrade() -> None:
    op.drop_index('ix_zart_executions_completed', table_name='zart_executions', schema=_schema())
