"""crash loops: claims that ended without a report, the leases index, crashed attempts

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-03 12:00:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = '0006'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ATTEMPTS = 'zart_step_attempts'
CHECK = 'ck_zart_step_attempts_status'
WITH_CRASHED = "status IN ('succeeded', 'failed', 'timed_out', 'crashed')"
WITHOUT_CRASHED = "status IN ('succeeded', 'failed', 'timed_out')"


def _schema() -> str | None:
    # ALTER TABLE is not subject to the connection's schema_translate_map (see 0002).
    schema: str | None = context.config.attributes.get("zart_schema")
    return schema


def _attempts(check: str) -> sa.Table:
    """zart_step_attempts as revision 0001 made it, with ``check``: batch mode copies it from
    this rather than from reflection, so ``zart db sql`` can print the copy too."""
    json = sa.JSON().with_variant(sa.Text(), 'sqlite')
    return sa.Table(
        ATTEMPTS,
        sa.MetaData(),
        sa.Column('attempt_id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('step_id', sa.Integer(), nullable=False),
        sa.Column('attempt_number', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('result', json, nullable=True),
        sa.Column('error', json, nullable=True),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('completed_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(check, name=CHECK),
        sa.ForeignKeyConstraint(
            ['step_id'],
            ['zart_steps.step_id'],
            name='fk_zart_step_attempts_step_id_zart_steps',
            ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('attempt_id', name='pk_zart_step_attempts'),
        sa.UniqueConstraint(
            'step_id', 'attempt_number', name='uq_zart_step_attempts_step_id_attempt_number'
        ),
    )


def _replace_attempt_check(old: str, condition: str) -> None:
    if op.get_context().dialect.name == 'sqlite':
        # SQLite cannot alter a CHECK: batch mode copies the table. zart_step_attempts is a
        # leaf (nothing references it), so dropping the old copy cascades to nothing.
        with op.batch_alter_table(ATTEMPTS, recreate='always', copy_from=_attempts(old)) as batch_op:
            batch_op.drop_constraint(op.f(CHECK), type_='check')
            batch_op.create_check_constraint(op.f(CHECK), condition)
        return
    op.drop_constraint(op.f(CHECK), ATTEMPTS, type_='check', schema=_schema())
    op.create_check_constraint(op.f(CHECK), ATTEMPTS, condition, schema=_schema())


def upgrade() -> None:
    # NOT NULL with a constant default: PostgreSQL (11+) and SQLite add it without rewriting
    # the table.
    op.add_column(
        'zart_executions',
        sa.Column('crashed_claims', sa.Integer(), server_default=sa.text('0'), nullable=False),
        schema=_schema(),
    )
    op.create_index(
        'ix_zart_executions_leases',
        'zart_executions',
        ['claimable_at'],
        unique=False,
        schema=_schema(),
        postgresql_where=sa.text("status = 'running'"),
        sqlite_where=sa.text("status = 'running'"),
    )
    _replace_attempt_check(WITHOUT_CRASHED, WITH_CRASHED)


def downgrade() -> None:
    # The older schema knows no crashed attempt: each becomes a failed one.
    attempts = sa.table(ATTEMPTS, sa.column('status', sa.String()), schema=_schema())
    op.execute(
        attempts.update().where(attempts.c.status == 'crashed').values(status='failed')
    )
    _replace_attempt_check(WITH_CRASHED, WITHOUT_CRASHED)
    op.drop_index('ix_zart_executions_leases', table_name='zart_executions', schema=_schema())
    # Not batch mode (see 0002): SQLite >= 3.35 drops an unindexed column in place.
    op.drop_column('zart_executions', 'crashed_claims', schema=_schema())
