"""schedule firings outlive their schedule, pruned by age (a bounded history window)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 19:00:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIRINGS = 'zart_schedule_firings'
FK = 'fk_zart_schedule_firings_schedule_name_zart_schedules'
INDEX = 'ix_zart_schedule_firings_fire_at'


def _schema() -> str | None:
    # ALTER TABLE is not subject to the connection's schema_translate_map (see 0002).
    schema: str | None = context.config.attributes.get("zart_schema")
    return schema


def _firings(*, with_fk: bool) -> sa.Table:
    """zart_schedule_firings as revision 0001 made it (``with_fk``) or without its foreign
    key: batch mode copies it from this rather than from reflection, so ``zart db sql`` can
    print the copy too."""
    constraints: list[sa.Constraint] = [
        sa.PrimaryKeyConstraint('schedule_name', 'fire_at', name='pk_zart_schedule_firings')
    ]
    if with_fk:
        constraints.append(
            sa.ForeignKeyConstraint(
                ['schedule_name'], ['zart_schedules.name'], name=FK, ondelete='CASCADE'
            )
        )
    return sa.Table(
        FIRINGS,
        sa.MetaData(),
        sa.Column('schedule_name', sa.String(length=255), nullable=False),
        sa.Column('fire_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('execution_id', sa.String(length=255), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        *constraints,
    )


def upgrade() -> None:
    # Removing a schedule no longer deletes its history: the firings drop the foreign key
    # (and its ON DELETE CASCADE), and workers prune them by age instead (fire_at's index).
    if op.get_context().dialect.name == 'sqlite':
        # SQLite cannot drop a foreign key: batch mode copies the table (a leaf: nothing
        # references it, so dropping the old copy cascades to nothing).
        copy = _firings(with_fk=True)
        with op.batch_alter_table(FIRINGS, recreate='always', copy_from=copy) as batch_op:
            batch_op.drop_constraint(FK, type_='foreignkey')
    else:
        op.drop_constraint(FK, FIRINGS, type_='foreignkey', schema=_schema())
    op.create_index(INDEX, FIRINGS, ['fire_at'], unique=False, schema=_schema())


def downgrade() -> None:
    op.drop_index(INDEX, table_name=FIRINGS, schema=_schema())
    # The older schema deletes a schedule's firings with it: those of removed schedules go.
    firings = sa.table(FIRINGS, sa.column('schedule_name', sa.String()), schema=_schema())
    schedules = sa.table('zart_schedules', sa.column('name', sa.String()), schema=_schema())
    op.execute(
        firings.delete().where(
            ~sa.exists().where(schedules.c.name == firings.c.schedule_name)
        )
    )
    if op.get_context().dialect.name == 'sqlite':
        copy = _firings(with_fk=False)
        with op.batch_alter_table(FIRINGS, recreate='always', copy_from=copy) as batch_op:
            batch_op.create_foreign_key(
                FK, 'zart_schedules', ['schedule_name'], ['name'], ondelete='CASCADE'
            )
    else:
        op.create_foreign_key(
            FK, FIRINGS, 'zart_schedules', ['schedule_name'], ['name'],
            ondelete='CASCADE', source_schema=_schema(), referent_schema=_schema(),
        )
