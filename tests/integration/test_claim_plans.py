"""The plans PostgreSQL makes of the ready claim on the worker's connections (generic plans,
``plan_cache_mode = force_generic_plan``), on a backlog whose due rows are out of physical
order, as wake-ups and retries leave them: the candidates are read on their indexes, in
claim order, never by reading every due row and sorting them.

A plan, not a time: the planner is deterministic for the same rows and statistics. The
generic plan once read all 300,000 due rows and sorted them (200 ms a claim instead of
0.1 ms), because it judged the limited-queue filter on ``queue_name`` as keeping almost no row.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from zart.database import DriverConnections
from zart.repositories import claims
from zart.repositories.executors import compiled_for

pytestmark = pytest.mark.postgresql_only

FILL = """
INSERT INTO zart_executions (execution_id, task_name, payload, status, current_run_id,
    run_count, claimable_at, claim_count, crashed_claims, version, created_at, updated_at,
    queue_name, priority)
SELECT md5(random()::text), 'plan-task', 'null'::jsonb, :status, md5(random()::text), 0,
    now() + (:offset + random()) * interval '1 hour', 0, 0, 0, now(), now(), 'default',
    :priority
FROM generate_series(1, :rows)
"""


def _literal(value: Any) -> str:
    if isinstance(value, list):
        items = ", ".join("'" + str(v).replace("'", "''") + "'" for v in value)
        return f"ARRAY[{items}]::varchar[]"
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'::timestamptz"
    return str(int(value))


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(_nodes(child))
    return found


@pytest.mark.parametrize("limited", [[], ["emails"]])
async def test_the_ready_claim_reads_its_indexes_in_order(
    engine: AsyncEngine, limited: list[str]
) -> None:
    async with engine.begin() as conn:
        # Due starts (their claimable_at random within the past hour, so out of order on
        # disk), prioritized due starts, and prioritized sleepers due in an hour.
        for status, offset, priority, rows in [
            ("scheduled", -1, 0, 60_000),
            ("scheduled", -1, 1, 20_000),
            ("waiting", 1, 5, 10_000),
        ]:
            params = {"status": status, "offset": offset, "priority": priority, "rows": rows}
            await conn.execute(text(FILL), params)
    async with engine.begin() as conn:  # committed: statistics are transactional
        await conn.execute(text("ANALYZE zart_executions"))

    statement = compiled_for(engine.dialect, None)(claims.CLAIM_DUE)
    parameters = claims._ClaimParameters(
        "w", ["plan-task"], 16, datetime.now(UTC), datetime.now(UTC), limited=limited
    ).params()
    arguments = ", ".join(_literal(v) for v in statement.arguments(parameters))
    driver = DriverConnections(engine, size=1)
    try:
        async with driver.connection() as connection:
            await connection.execute(f"PREPARE claim_due AS {statement.sql}")
            for _ in range(6):  # past the first executions, as a worker's claims are
                await connection.fetch(f"EXECUTE claim_due({arguments})")
            found = await connection.fetchval(
                f"EXPLAIN (FORMAT JSON, COSTS OFF) EXECUTE claim_due({arguments})"
            )
    finally:
        await driver.close()
    plan = json.loads(found) if isinstance(found, str) else found  # the driver's codec decodes
    nodes = _nodes(plan[0]["Plan"])
    kinds = {node["Node Type"] for node in nodes}
    assert "Sort" not in kinds, nodes
    assert "Bitmap Heap Scan" not in kinds, nodes
    assert "Seq Scan" not in kinds, nodes
    indexes = {node.get("Index Name") for node in nodes} - {None}
    assert indexes == {"ix_zart_executions_urgent", "ix_zart_executions_claimable"}, nodes
