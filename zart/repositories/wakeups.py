"""Wake-ups: tell idle workers that something became (or will become) claimable.

Where the backend notifies (PostgreSQL), a ``NOTIFY`` on Zart's channel is sent inside the
transaction that made the change, so it is delivered at commit (never for a rolled-back
change). Workers LISTEN and claim at once; polling remains the fallback. SQLite has no NOTIFY:
its workers poll.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import String, bindparam, func, select

from zart.models import ExecutionRow, table_of
from zart.repositories.executors import Backend, Operation, reads
from zart.repositories.statements import Statement, one_of

executions = table_of(ExecutionRow)

CHANNEL = "zart_wakeup"

#: Payload of the wake-up sent when pause rules change: every worker reloads them (and looks
#: for work: a removed rule makes executions claimable).
PAUSE_RULES_CHANGED = "zart:pause-rules"

NOTIFY = Statement(
    "notify",
    lambda _d: select(
        func.pg_notify(bindparam("channel", type_=String), bindparam("task", type_=String))
    ),
)
NEXT_CLAIMABLE = Statement(
    "next_claimable_at",
    lambda d: select(func.min(executions.c.claimable_at).label("due")).where(
        executions.c.claimable_at > bindparam("after", type_=executions.c.claimable_at.type),
        one_of(executions.c.task_name, "task_names", d),
    ),
)


def channel_for(schema: str | None) -> str:
    """The NOTIFY channel of the Zart tables in ``schema`` (one per schema, so deployments
    sharing a database do not wake each other)."""
    return CHANNEL if schema is None else f"{CHANNEL}_{schema}"


def notify(backend: Backend, channel: str, *task_names: str) -> Operation[None]:
    """Queue a wake-up for workers of each of ``task_names``, sent when this transaction
    commits (nothing where the backend does not notify: its workers poll)."""
    if backend.notifies:
        for task_name in task_names:
            yield NOTIFY, {"channel": channel, "task": task_name}


@reads
def next_claimable_at(
    backend: Backend, task_names: Iterable[str], *, after: datetime
) -> Operation[datetime | None]:
    """When the next execution of ``task_names`` becomes claimable after ``after`` (a timer, a
    lease expiry), or ``None``: how long an idle worker may sleep. Reads the partial claim
    index, so finished history costs nothing."""
    found = yield NEXT_CLAIMABLE, {"after": after, "task_names": list(task_names)}
    value: datetime | None = found[0]["due"] if found else None
    return value
