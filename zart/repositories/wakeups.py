"""Wake-ups: tell idle workers that something became (or will become) claimable.

On PostgreSQL a ``NOTIFY`` on Zart's channel is sent inside the transaction that made the
change, so it is delivered at commit (never for a rolled-back change). Workers LISTEN and claim
at once; polling remains the fallback. SQLite has no NOTIFY: its workers poll.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import String, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from zart.models import ExecutionRow, table_of
from zart.repositories import raw
from zart.repositories.dialect import is_postgresql

executions = table_of(ExecutionRow)

CHANNEL = "zart_wakeup"

#: Payload of the wake-up sent when pause rules change: every worker reloads them (and looks
#: for work: a removed rule makes executions claimable).
PAUSE_RULES_CHANGED = "zart:pause-rules"


def channel_for(schema: str | None) -> str:
    """The NOTIFY channel of the Zart tables in ``schema`` (one per schema, so deployments
    sharing a database do not wake each other)."""
    return CHANNEL if schema is None else f"{CHANNEL}_{schema}"


async def notify(conn: AsyncConnection, channel: str, task_name: str) -> None:
    """Queue a wake-up for workers of ``task_name``, sent when this transaction commits."""
    if is_postgresql(conn):
        await conn.execute(select(func.pg_notify(channel, task_name)))


async def notify_driver(session: Any, channel: str, task_name: str) -> None:
    """:func:`notify` on a PostgreSQL driver connection (sent when its transaction commits)."""
    statement = raw.compiled(
        "notify",
        lambda: select(
            func.pg_notify(bindparam("channel", type_=String), bindparam("task", type_=String))
        ),
        session.dialect,
        session.schema_map,
    )
    await statement.fetch(session.connection, {"channel": channel, "task": task_name})


async def next_claimable_at(
    conn: AsyncConnection, task_names: Iterable[str], *, after: datetime
) -> datetime | None:
    """When the next execution of ``task_names`` becomes claimable after ``after`` (a timer, a
    lease expiry), or ``None``: how long an idle worker may sleep. Reads the partial claim
    index, so finished history costs nothing."""
    value: datetime | None = await conn.scalar(
        select(func.min(executions.c.claimable_at)).where(
            executions.c.claimable_at > after, executions.c.task_name.in_(list(task_names))
        )
    )
    return value


async def next_claimable_at_driver(
    session: Any, task_names: Iterable[str], *, after: datetime
) -> datetime | None:
    """:func:`next_claimable_at` on a PostgreSQL driver connection."""
    statement = raw.compiled(
        "next_claimable_at",
        lambda: select(func.min(executions.c.claimable_at).label("due")).where(
            executions.c.claimable_at > bindparam("after", type_=executions.c.claimable_at.type),
            executions.c.task_name == any_(bindparam("task_names", type_=ARRAY(String))),
        ),
        session.dialect,
        session.schema_map,
    )
    rows = await statement.fetch(
        session.connection, {"after": after, "task_names": list(task_names)}
    )
    value: datetime | None = rows[0]["due"] if rows else None
    return value


def next_claimable_at_sqlite(
    session: Any, task_names: Iterable[str], *, after: datetime
) -> datetime | None:
    """:func:`next_claimable_at` on SQLite's writer connection (a read, no transaction)."""
    statement = raw.compiled(
        "next_claimable_at",
        lambda: select(func.min(executions.c.claimable_at).label("due")).where(
            executions.c.claimable_at > bindparam("after", type_=executions.c.claimable_at.type),
            raw.in_json_list(executions.c.task_name, "task_names"),
        ),
        session.dialect,
        None,
    )
    rows = statement.run(
        session.connection, {"after": after, "task_names": raw.json_list(list(task_names))}
    )
    value: datetime | None = rows[0]["due"] if rows else None
    return value
