"""safe deploys: the concurrent branch each step was recorded in

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 19:10:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    # ALTER TABLE is not subject to the connection's schema_translate_map (see 0002).
    schema: str | None = context.config.attributes.get("zart_schema")
    return schema


def upgrade() -> None:
    # Nullable, no default: added without rewriting the table. NULL marks a step recorded
    # before this revision, whose run is replayed without the step-path check.
    op.add_column(
        'zart_steps', sa.Column('branch', sa.String(length=255), nullable=True),
        schema=_schema(),
    )


def downgrade() -> None:
    # Not batch mode (see 0002): SQLite >= 3.35 drops an unindexed column in place.
    op.drop_column('zart_steps', 'branch', schema=_schema())
