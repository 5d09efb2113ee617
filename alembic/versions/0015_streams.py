"""published values and durable streams: zart_published, zart_stream_items

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 19:00:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = (
    sa.JSON()
    .with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
    .with_variant(sa.Text(), 'sqlite')
)


def upgrade() -> None:
    # CREATE and DROP TABLE follow the connection's schema_translate_map (as in 0001).
    executions = 'zart_executions.execution_id'
    op.create_table(
        'zart_published',
        sa.Column('execution_id', sa.String(length=255), nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('value', JSON, nullable=False),
        sa.Column('version', sa.Integer(), server_default=sa.text('1'), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['execution_id'], [executions],
            name=op.f('fk_zart_published_execution_id_zart_executions'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('execution_id', 'key', name=op.f('pk_zart_published')),
    )
    op.create_table(
        'zart_stream_items',
        sa.Column('execution_id', sa.String(length=255), nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('offset', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('value', JSON, nullable=True),
        sa.Column('closed', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.Column('run_id', sa.String(length=36), nullable=False),
        sa.Column('written_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['execution_id'], [executions],
            name=op.f('fk_zart_stream_items_execution_id_zart_executions'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint(
            'execution_id', 'key', 'offset', name=op.f('pk_zart_stream_items')
        ),
    )


def downgrade() -> None:
    op.drop_table('zart_stream_items')
    op.drop_table('zart_published')
