"""a queue's rate limit per partition key: the limit, and the partition of each counted start

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 19:30:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    # ALTER TABLE is not subject to the connection's schema_translate_map (see 0002).
    schema: str | None = context.config.attributes.get("zart_schema")
    return schema


def upgrade() -> None:
    schema = _schema()
    # Nullable, no default: added without rewriting either table. Starts recorded before
    # have no partition: a partition rate limit set after the upgrade counts from then on.
    op.add_column(
        'zart_queues', sa.Column('partition_rate_limit', sa.String(length=64), nullable=True),
        schema=schema,
    )
    op.add_column(
        'zart_queue_starts', sa.Column('partition_key', sa.String(length=255), nullable=True),
        schema=schema,
    )


def downgrade() -> None:
    schema = _schema()
    # Not batch mode (see 0002): SQLite >= 3.35 drops an unindexed column in place.
    op.drop_column('zart_queue_starts', 'partition_key', schema=schema)
    op.drop_column('zart_queues', 'partition_rate_limit', schema=schema)
