"""The plans PostgreSQL makes of the claims on the worker's connections (generic plans,
``plan_cache_mode = force_generic_plan``), on a backlog whose due rows are out of physical
order, as wake-ups and retries leave them: the candidates are read on their indexes, in
claim order, never by reading every due row and sorting them.

A plan, not a time: the planner is deterministic for the same rows and statistics. The
generic plan once read all 300,000 due rows and sorted them (200 ms a claim instead of
0.1 ms), because it judged the limited-queue filter on ``queue_name`` as keeping almost no row.
And a generic plan made while the tables were empty is made again once they are not: one such
plan of the claim-ahead read every step row once per candidate.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from zart.database import DriverConnections
from zart.repositories import claims, held
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
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
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


SLEEPERS = """
WITH made AS (
    INSERT INTO zart_executions (execution_id, task_name, payload, status, current_run_id,
        run_count, claimable_at, claim_count, crashed_claims, version, created_at, updated_at,
        priority)
    SELECT 's' || n, 'plan-task', 'null'::jsonb, 'waiting', 'r' || n, 1,
        now() + interval '1 minute', 1, 0, 1, now(), now(), 0
    FROM generate_series(1, :rows) AS n
    RETURNING execution_id, current_run_id
), runs AS (
    INSERT INTO zart_runs (run_id, execution_id, run_index, payload, status, trigger,
        started_at)
    SELECT current_run_id, execution_id, 1, 'null'::jsonb, 'waiting', 'initial', now()
    FROM made
    RETURNING run_id, execution_id
)
INSERT INTO zart_steps (run_id, execution_id, name, kind, status, attempts, position,
    wake_at, created_at, updated_at)
SELECT run_id, execution_id, 'nap', 'sleep', 'waiting', 0, 0, now() + interval '1 minute',
    now(), now()
FROM runs
"""


async def _steps_scans(connection: Any, arguments: str) -> list[int]:
    """Per node of the claim-ahead's plan, as the connection would run it now, that reads the
    whole step table: how many times it does (executed, then rolled back)."""
    transaction = connection.transaction()
    await transaction.start()
    try:
        found = await connection.fetchval(
            f"EXPLAIN (ANALYZE, FORMAT JSON, COSTS OFF) EXECUTE claim_ahead({arguments})"
        )
    finally:
        await transaction.rollback()
    plan = json.loads(found) if isinstance(found, str) else found
    return [
        node["Actual Loops"]
        for node in _nodes(plan[0]["Plan"])
        if node["Node Type"] == "Seq Scan" and node.get("Relation Name") == "zart_steps"
    ]


async def test_a_plan_made_while_the_tables_were_empty_is_made_again(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:  # no analyze may replan it behind the test's back
        for table in ("zart_executions", "zart_runs", "zart_steps"):
            await conn.execute(text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
    now = datetime.now(UTC)
    statement = compiled_for(engine.dialect, None)(held.CLAIM_AHEAD)
    parameters = claims._ClaimParameters("w", ["plan-task"], 250, now, now).params(
        horizon=now + timedelta(hours=1)
    )
    arguments = ", ".join(_literal(v) for v in statement.arguments(parameters))
    driver = DriverConnections(engine, size=1, replan_every=3600.0)

    async def scans() -> list[int]:
        async with driver.connection() as connection:
            return await _steps_scans(connection, arguments)

    try:
        async with driver.connection() as connection:  # planned on the empty tables
            await connection.execute(f"PREPARE claim_ahead AS {statement.sql}")
        await scans()
        async with engine.begin() as conn:
            await conn.execute(text(SLEEPERS), {"rows": 2_000})
        stale = await scans()
        driver.replan_every = 0.0  # lent again after its plans' time: made again
        fresh = await scans()
    finally:
        await driver.close()
    # The plan of the empty tables read the step table once per candidate (the hazard); the
    # plan made again reads it at most once.
    assert max(stale, default=0) > 1, stale
    assert max(fresh, default=0) <= 1, fresh
