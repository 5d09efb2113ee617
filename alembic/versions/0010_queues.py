"""queues: an execution's queue, partition and priority; the queues' limits; rate-limit starts

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-03 15:00:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision: str = '0010'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = (
    sa.JSON()
    .with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
    .with_variant(sa.Text(), 'sqlite')
)


def _schema() -> str | None:
    # ALTER TABLE is not subject to the connection's schema_translate_map (see 0002).
    schema: str | None = context.config.attributes.get("zart_schema")
    return schema


def upgrade() -> None:
    schema = _schema()
    # Constant defaults: added without rewriting the table (PostgreSQL 11+, SQLite).
    op.add_column(
        'zart_executions',
        sa.Column('queue_name', sa.String(length=64), server_default=sa.text("'default'"),
                  nullable=False),
        schema=schema,
    )
    op.add_column(
        'zart_executions', sa.Column('partition_key', sa.String(length=255), nullable=True),
        schema=schema,
    )
    op.add_column(
        'zart_executions',
        sa.Column('priority', sa.Integer(), server_default=sa.text('0'), nullable=False),
        schema=schema,
    )
    op.create_index(
        'ix_zart_executions_queue_claimable', 'zart_executions', ['queue_name', 'claimable_at'],
        unique=False, schema=schema, postgresql_where=sa.text('claimable_at IS NOT NULL'),
        sqlite_where=sa.text('claimable_at IS NOT NULL'),
    )
    op.create_table(
        'zart_queues',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('concurrency', sa.Integer(), nullable=True),
        sa.Column('partition_concurrency', sa.Integer(), nullable=True),
        sa.Column('rate_limit', sa.String(length=64), nullable=True),
        sa.Column('paused', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.Column('declared', JSON, nullable=True),
        sa.Column('partition_cursor', sa.String(length=255), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_zart_queues')),
        schema=schema,
    )
    op.create_table(
        'zart_queue_starts',
        sa.Column('start_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  autoincrement=True, nullable=False),
        sa.Column('queue_name', sa.String(length=64), nullable=False),
        sa.Column('execution_id', sa.String(length=255), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('start_id', name=op.f('pk_zart_queue_starts')),
        schema=schema,
    )
    op.create_index(
        'ix_zart_queue_starts_queue_started', 'zart_queue_starts', ['queue_name', 'started_at'],
        unique=False, schema=schema,
    )


def downgrade() -> None:
    schema = _schema()
    op.drop_index('ix_zart_queue_starts_queue_started', table_name='zart_queue_starts',
                  schema=schema)
    op.drop_table('zart_queue_starts', schema=schema)
    op.drop_table('zart_queues', schema=schema)
    op.drop_index('ix_zart_executions_queue_claimable', table_name='zart_executions',
                  schema=schema)
    # Not batch mode (see 0002): SQLite >= 3.35 drops a column in place once its index is gone.
    op.drop_column('zart_executions', 'priority', schema=schema)
    op.drop_column('zart_executions', 'partition_key', schema=schema)
    op.drop_column('zart_executions', 'queue_name', schema=schema)
