"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 01:04:21.010950

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('zart_executions',
    sa.Column('execution_id', sa.String(length=255), nullable=False),
    sa.Column('task_name', sa.String(length=255), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql').with_variant(sa.Text(), 'sqlite'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('result', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql').with_variant(sa.Text(), 'sqlite'), nullable=True),
    sa.Column('error', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql').with_variant(sa.Text(), 'sqlite'), nullable=True),
    sa.Column('current_run_id', sa.String(length=36), nullable=False),
    sa.Column('run_count', sa.Integer(), server_default=sa.text('1'), nullable=False),
    sa.Column('claimable_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_token', sa.String(length=36), nullable=True),
    sa.Column('lease_owner', sa.String(length=255), nullable=True),
    sa.Column('claim_count', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), server_default=sa.text('1'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('scheduled', 'running', 'waiting', 'completed', 'failed', 'cancelled')", name=op.f('ck_zart_executions_status')),
    sa.PrimaryKeyConstraint('execution_id', name=op.f('pk_zart_executions'))
    )
    with op.batch_alter_table('zart_executions', schema=None) as batch_op:
        batch_op.create_index('ix_zart_executions_claimable', ['claimable_at'], unique=False, postgresql_where=sa.text('claimable_at IS NOT NULL'), sqlite_where=sa.text('claimable_at IS NOT NULL'))
        batch_op.create_index('ix_zart_executions_status_created', ['status', 'created_at'], unique=False)
        batch_op.create_index('ix_zart_executions_task_created', ['task_name', 'created_at'], unique=False)

    op.create_table('zart_pause_rules',
    sa.Column('rule_id', sa.String(length=36), nullable=False),
    sa.Column('execution_id', sa.String(length=255), nullable=True),
    sa.Column('task_name', sa.String(length=255), nullable=True),
    sa.Column('step_pattern', sa.String(length=255), nullable=True),
    sa.Column('reason', sa.String(length=1024), nullable=True),
    sa.Column('triggered_by', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_by', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('rule_id', name=op.f('pk_zart_pause_rules'))
    )
    op.create_table('zart_schedules',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('task_name', sa.String(length=255), nullable=False),
    sa.Column('cron', sa.String(length=255), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql').with_variant(sa.Text(), 'sqlite'), nullable=False),
    sa.Column('overlap_policy', sa.String(length=32), nullable=False),
    sa.Column('catchup_policy', sa.String(length=32), nullable=False),
    sa.Column('paused', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('next_fire_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_fire_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("catchup_policy IN ('skip', 'latest', 'all')", name=op.f('ck_zart_schedules_catchup_policy')),
    sa.CheckConstraint("overlap_policy IN ('skip', 'allow', 'cancel_previous')", name=op.f('ck_zart_schedules_overlap_policy')),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_zart_schedules'))
    )
    with op.batch_alter_table('zart_schedules', schema=None) as batch_op:
        batch_op.create_index('ix_zart_schedules_next_fire_at', ['next_fire_at'], unique=False)

    op.create_table('zart_workers',
    sa.Column('worker_id', sa.String(length=255), nullable=False),
    sa.Column('hostname', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('task_names', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql').with_variant(sa.Text(), 'sqlite'), nullable=False),
    sa.Column('concurrency', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('worker_id', name=op.f('pk_zart_workers'))
    )
    with op.batch_alter_table('zart_workers', schema=None) as batch_op:
        batch_op.create_index('ix_zart_workers_last_seen_at', ['last_seen_at'], unique=False)

    op.create_table('zart_events',
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('execution_id', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql').with_variant(sa.Text(), 'sqlite'), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('consumed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['execution_id'], ['zart_executions.execution_id'], name=op.f('fk_zart_events_execution_id_zart_executions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_zart_events')),
    sa.UniqueConstraint('execution_id', 'name', name=op.f('uq_zart_events_execution_id_name'))
    )
    op.create_table('zart_runs',
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('execution_id', sa.String(length=255), nullable=False),
    sa.Column('run_index', sa.Integer(), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql').with_variant(sa.Text(), 'sqlite'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('result', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql').with_variant(sa.Text(), 'sqlite'), nullable=True),
    sa.Column('error', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql').with_variant(sa.Text(), 'sqlite'), nullable=True),
    sa.Column('trigger', sa.String(length=32), nullable=False),
    sa.Column('triggered_by', sa.String(length=255), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('scheduled', 'running', 'waiting', 'completed', 'failed', 'cancelled')", name=op.f('ck_zart_runs_status')),
    sa.CheckConstraint("trigger IN ('initial', 'restart', 'selective_rerun')", name=op.f('ck_zart_runs_trigger')),
    sa.ForeignKeyConstraint(['execution_id'], ['zart_executions.execution_id'], name=op.f('fk_zart_runs_execution_id_zart_executions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', name=op.f('pk_zart_runs')),
    sa.UniqueConstraint('execution_id', 'run_index', name=op.f('uq_zart_runs_execution_id_run_index'))
    )
    op.create_table('zart_schedule_firings',
    sa.Column('schedule_name', sa.String(length=255), nullable=False),
    sa.Column('fire_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('execution_id', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['schedule_name'], ['zart_schedules.name'], name=op.f('fk_zart_schedule_firings_schedule_name_zart_schedules'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('schedule_name', 'fire_at', name=op.f('pk_zart_schedule_firings'))
    )
    op.create_table('zart_steps',
    sa.Column('step_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('execution_id', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('result', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql').with_variant(sa.Text(), 'sqlite'), nullable=True),
    sa.Column('error', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql').with_variant(sa.Text(), 'sqlite'), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('wake_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('step', 'capture', 'sleep', 'event')", name=op.f('ck_zart_steps_kind')),
    sa.CheckConstraint("status IN ('running', 'waiting', 'completed', 'failed')", name=op.f('ck_zart_steps_status')),
    sa.ForeignKeyConstraint(['run_id'], ['zart_runs.run_id'], name=op.f('fk_zart_steps_run_id_zart_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('step_id', name=op.f('pk_zart_steps')),
    sa.UniqueConstraint('run_id', 'name', name=op.f('uq_zart_steps_run_id_name'))
    )
    op.create_table('zart_timers',
    sa.Column('timer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('execution_id', sa.String(length=255), nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('fire_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('fired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('sleep', 'retry', 'event_timeout', 'execution_deadline')", name=op.f('ck_zart_timers_kind')),
    sa.ForeignKeyConstraint(['execution_id'], ['zart_executions.execution_id'], name=op.f('fk_zart_timers_execution_id_zart_executions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['zart_runs.run_id'], name=op.f('fk_zart_timers_run_id_zart_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('timer_id', name=op.f('pk_zart_timers'))
    )
    with op.batch_alter_table('zart_timers', schema=None) as batch_op:
        batch_op.create_index('ix_zart_timers_run_id', ['run_id'], unique=False)

    op.create_table('zart_step_attempts',
    sa.Column('attempt_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('step_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('attempt_number', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('result', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql').with_variant(sa.Text(), 'sqlite'), nullable=True),
    sa.Column('error', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql').with_variant(sa.Text(), 'sqlite'), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('succeeded', 'failed', 'timed_out')", name=op.f('ck_zart_step_attempts_status')),
    sa.ForeignKeyConstraint(['step_id'], ['zart_steps.step_id'], name=op.f('fk_zart_step_attempts_step_id_zart_steps'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('attempt_id', name=op.f('pk_zart_step_attempts')),
    sa.UniqueConstraint('step_id', 'attempt_number', name=op.f('uq_zart_step_attempts_step_id_attempt_number'))
    )


def downgrade() -> None:
    op.drop_table('zart_step_attempts')
    with op.batch_alter_table('zart_timers', schema=None) as batch_op:
        batch_op.drop_index('ix_zart_timers_run_id')

    op.drop_table('zart_timers')
    op.drop_table('zart_steps')
    op.drop_table('zart_schedule_firings')
    op.drop_table('zart_runs')
    op.drop_table('zart_events')
    with op.batch_alter_table('zart_workers', schema=None) as batch_op:
        batch_op.drop_index('ix_zart_workers_last_seen_at')

    op.drop_table('zart_workers')
    with op.batch_alter_table('zart_schedules', schema=None) as batch_op:
        batch_op.drop_index('ix_zart_schedules_next_fire_at')

    op.drop_table('zart_schedules')
    op.drop_table('zart_pause_rules')
    with op.batch_alter_table('zart_executions', schema=None) as batch_op:
        batch_op.drop_index('ix_zart_executions_task_created')
        batch_op.drop_index('ix_zart_executions_status_created')
        batch_op.drop_index('ix_zart_executions_claimable', postgresql_where=sa.text('claimable_at IS NOT NULL'), sqlite_where=sa.text('claimable_at IS NOT NULL'))

    op.drop_table('zart_executions')
