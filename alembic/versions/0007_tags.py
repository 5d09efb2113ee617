"""execution tags

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 12:10:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    # ALTER TABLE is not subject to the connection's schema_translate_map (see 0002).
    schema: str | None = context.config.attributes.get("zart_schema")
    return schema


def upgrade() -> None:
    # Nullable, no default: added without rewriting the table on PostgreSQL and SQLite.
    op.add_column(
        'zart_executions',
        sa.Column(
            'tags',
            sa.JSON()
            .with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
            .with_variant(sa.Text(), 'sqlite'),
            nullable=True,
        ),
        schema=_schema(),
    )
    # Partial: only tagged rows are indexed. GIN (jsonb_path_ops) serves tags @> '{...}' on
    # PostgreSQL; on SQLite the filter reads json_extract and the index stays small.
    op.create_index(
        'ix_zart_executions_tags', 'zart_executions', ['tags'], unique=False, schema=_schema(),
        postgresql_using='gin', postgresql_ops={'tags': 'jsonb_path_ops'},
        postgresql_where=sa.text('tags IS NOT NULL'), sqlite_where=sa.text('tags IS NOT NULL'),
    )


def downgrade() -> None:
    op.drop_index('ix_zart_executions_tags', table_name='zart_executions', schema=_schema())
    # Not batch mode (see 0002): SQLite >= 3.35 drops a column in place once its index is gone.
    op.drop_column('zart_executions', 'tags', schema=_schema())
