"""child executions: the parent link and what the parent's cancel does to the child

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 19:00:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PARENT_WHERE = "parent_execution_id IS NOT NULL"


def _schema() -> str | None:
    # ALTER TABLE is not subject to the connection's schema_translate_map (see 0002).
    schema: str | None = context.config.attributes.get("zart_schema")
    return schema


def upgrade() -> None:
    schema = _schema()
    # Nullable, no default: added without rewriting the table; the partial index starts
    # empty (no existing row is a child).
    op.add_column(
        'zart_executions',
        sa.Column('parent_execution_id', sa.String(length=255), nullable=True),
        schema=schema,
    )
    op.add_column(
        'zart_executions', sa.Column('parent_close', sa.String(length=16), nullable=True),
        schema=schema,
    )
    op.create_index(
        'ix_zart_executions_parent', 'zart_executions', ['parent_execution_id'],
        schema=schema, postgresql_where=sa.text(PARENT_WHERE), sqlite_where=sa.text(PARENT_WHERE),
    )


def downgrade() -> None:
    schema = _schema()
    op.drop_index('ix_zart_executions_parent', table_name='zart_executions', schema=schema)
    # Not batch mode (see 0002): SQLite >= 3.35 drops a column in place once its index is gone.
    op.drop_column('zart_executions', 'parent_close', schema=schema)
    op.drop_column('zart_executions', 'parent_execution_id', schema=schema)
