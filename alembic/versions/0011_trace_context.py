"""the trace context a start carries into the worker

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 15:10:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    # ALTER TABLE is not subject to the connection's schema_translate_map (see 0002).
    schema: str | None = context.config.attributes.get("zart_schema")
    return schema


def upgrade() -> None:
    # Nullable, no default: added without rewriting the table on PostgreSQL and SQLite. NULL
    # for every start made outside a trace (or without OpenTelemetry installed).
    op.add_column(
        'zart_executions',
        sa.Column(
            'trace_context',
            sa.JSON()
            .with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
            .with_variant(sa.Text(), 'sqlite'),
            nullable=True,
        ),
        schema=_schema(),
    )


def downgrade() -> None:
    # Not batch mode (see 0002): SQLite >= 3.35 drops a column in place.
    op.drop_column('zart_executions', 'trace_context', schema=_schema())
