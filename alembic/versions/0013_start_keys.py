"""singleton and debounced starts: their keys, and the unique indexes that make them exact

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 19:20:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SINGLETON_WHERE = "singleton_key IS NOT NULL AND status IN ('scheduled', 'running', 'waiting')"
DEBOUNCE_WHERE = "debounce_key IS NOT NULL AND status = 'scheduled' AND claim_count = 0"


def _schema() -> str | None:
    # ALTER TABLE is not subject to the connection's schema_translate_map (see 0002).
    schema: str | None = context.config.attributes.get("zart_schema")
    return schema


def upgrade() -> None:
    schema = _schema()
    # Nullable, no default: added without rewriting the table; the partial indexes start
    # empty (no existing row has a key).
    op.add_column(
        'zart_executions', sa.Column('singleton_key', sa.String(length=255), nullable=True),
        schema=schema,
    )
    op.add_column(
        'zart_executions', sa.Column('debounce_key', sa.String(length=255), nullable=True),
        schema=schema,
    )
    op.create_index(
        'ux_zart_executions_singleton', 'zart_executions', ['task_name', 'singleton_key'],
        unique=True, schema=schema, postgresql_where=sa.text(SINGLETON_WHERE),
        sqlite_where=sa.text(SINGLETON_WHERE),
    )
    op.create_index(
        'ux_zart_executions_debounce', 'zart_executions', ['task_name', 'debounce_key'],
        unique=True, schema=schema, postgresql_where=sa.text(DEBOUNCE_WHERE),
        sqlite_where=sa.text(DEBOUNCE_WHERE),
    )


def downgrade() -> None:
    schema = _schema()
    op.drop_index('ux_zart_executions_debounce', table_name='zart_executions', schema=schema)
    op.drop_index('ux_zart_executions_singleton', table_name='zart_executions', schema=schema)
    # Not batch mode (see 0002): SQLite >= 3.35 drops a column in place once its index is gone.
    op.drop_column('zart_executions', 'debounce_key', schema=schema)
    op.drop_column('zart_executions', 'singleton_key', schema=schema)
