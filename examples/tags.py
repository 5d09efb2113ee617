"""Tags: label executions when you start them, read the labels inside, find them later.

Reports run per tenant. Each start carries ``tags={"tenant": ..., "kind": ...}``; the handler
reads its own tags (``zart.context().tags``) and the operator finds a tenant's executions with
``list_executions(tags=...)`` (HTTP: ``GET /api/v1/executions?tag=tenant:acme``; CLI: ``zart
list --tag tenant=acme``). On PostgreSQL a GIN index serves the filter.

    python examples/tags.py
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import zart
from zart.testing import durable_test_scheduler, run_to_completion

DATABASE = Path("tags.db")


@zart.durable("tenant-report")
async def tenant_report(month: str) -> str:
    tags = zart.context().tags
    return f"{tags['kind']} report for {tags['tenant']}, {month}"


async def main() -> None:
    async with durable_test_scheduler(f"sqlite+aiosqlite:///{DATABASE}") as scheduler:
        for tenant, kind in [("acme", "usage"), ("acme", "billing"), ("globex", "usage")]:
            execution_id = await scheduler.start(
                tenant_report, "2026-11", tags={"tenant": tenant, "kind": kind}
            )
            print(await run_to_completion(scheduler, execution_id))

        acme = await scheduler.list_executions(tags={"tenant": "acme"})
        print(f"\nacme has {acme.total} executions")
        usage = await scheduler.list_executions(tags={"tenant": "acme", "kind": "usage"})
        print(f"acme's usage reports: {[record.tags for record in usage.items]}")
        try:
            await scheduler.list_executions(tags={"tenant id": "acme"})
        except zart.InvalidName as exc:
            print(f"a bad filter: {exc}")


if __name__ == "__main__":
    for suffix in ("", "-wal", "-shm"):  # start from an empty database on every run
        Path(f"{DATABASE}{suffix}").unlink(missing_ok=True)
    asyncio.run(main())
