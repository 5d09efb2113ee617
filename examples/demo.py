"""Demo: create Zart's schema in an embedded SQLite file and show what it holds.

Run it with ``make run``. (The durable runtime will turn this into a workflow demo.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from zart.database import create_engine
from zart.migrations import current_revision, upgrade

DATABASE = Path("demo.db")


def describe(conn: Connection) -> list[str]:
    inspector = inspect(conn)
    lines = []
    for table in sorted(inspector.get_table_names()):
        columns = ", ".join(c["name"] for c in inspector.get_columns(table))
        lines.append(f"  {table:<24} {columns}")
    return lines


async def main() -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{DATABASE}")
    try:
        await upgrade(engine)
        revision = await current_revision(engine)
        async with engine.connect() as conn:
            lines = await conn.run_sync(describe)
    finally:
        await engine.dispose()
    print(f"{DATABASE} is at schema revision {revision}. Tables:")
    print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
