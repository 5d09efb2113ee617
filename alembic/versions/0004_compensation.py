"""the compensation run when an execution is cancelled (on_cancel)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 11:40:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    # ALTER TABLE is not subject to the connection's schema_translate_map (see 0002).
    schema: str | None = context.config.attributes.get("zart_schema")
    return schema


def upgrade() -> None:
    # Nullable, no default: added without rewriting the table on PostgreSQL and SQLite. The
    # cancelled execution names its compensation, the compensation the execution it undoes.
    for column in ('compensation_id', 'compensates'):
        op.add_column(
            'zart_executions', sa.Column(column, sa.String(length=255), nullable=True),
            schema=_schema(),
        )


def downgrade() -> None:
    # Not batch mode (see 0002): SQLite >= 3.35 drops an unindexed column in place.
    for column in ('compensates', 'compensation_id'):
        op.drop_column('zart_executions', column, schema=_schema())
