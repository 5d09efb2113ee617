"""Claims and fenced writes under real concurrency: several connections, one database."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import LEASE, T0, claim, completed_step, new_execution, run_on
from zart.errors import LeaseLost
from zart.repositories import steps
from zart.repositories.records import Lease

CLAIMERS = 8
EXECUTIONS = 200


async def test_concurrent_claimers_share_the_work_without_overlap(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        expected = {
            (await new_execution(conn, execution_id=f"c-{i:03}")).execution_id
            for i in range(EXECUTIONS)
        }
    start = asyncio.Event()

    async def claimer(worker: int) -> list[str]:
        mine: list[str] = []
        await start.wait()
        while True:
            async with engine.begin() as conn:
                claimed = await claim(conn, worker_id=f"w{worker}", limit=7)
            if not claimed:
                return mine
            mine.extend(c.execution.execution_id for c in claimed)
            await asyncio.sleep(0)  # let the others interleave

    tasks = [asyncio.create_task(claimer(i)) for i in range(CLAIMERS)]
    start.set()
    results = await asyncio.gather(*tasks)

    counts = Counter(eid for claimed in results for eid in claimed)
    duplicates = {eid: n for eid, n in counts.items() if n > 1}
    assert duplicates == {}
    assert set(counts) == expected
    assert sum(1 for claimed in results if claimed) > 1, "the work was not shared at all"


@pytest.mark.postgresql_only
async def test_a_claim_skips_an_execution_whose_checkpoint_is_in_flight(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        record = await new_execution(conn)
        (claimed,) = await claim(conn)
    lease = claimed.lease
    expired = T0 + LEASE + timedelta(seconds=1)

    async with engine.connect() as writer, engine.connect() as claimer:
        await writer.begin()
        await run_on(
            writer,
            steps.record_step_outcome,
            lease,
            completed_step(record.run_id, "charge", "ok"),
            now=expired,
        )
        # The lease has expired, but the checkpoint holds the row: the claim passes it by.
        async with claimer.begin():
            assert await claim(claimer, worker_id="w2", now=expired, takeovers=1) == []
        await writer.commit()
        async with claimer.begin():
            (taken,) = await claim(claimer, worker_id="w2", now=expired, takeovers=1)
            outcomes = await run_on(claimer, steps.load_run_outcomes, record.run_id)
    assert taken.execution.execution_id == record.execution_id
    assert outcomes["charge"].result == "ok"


@pytest.mark.postgresql_only
async def test_a_checkpoint_racing_a_takeover_waits_then_is_fenced_out(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        record = await new_execution(conn)
        (claimed,) = await claim(conn)
    stale: Lease = claimed.lease
    expired = T0 + LEASE + timedelta(seconds=1)

    async with engine.connect() as claimer, engine.connect() as writer:
        await claimer.begin()
        (taken,) = await claim(
            claimer, worker_id="w2", now=expired, takeovers=1
        )  # not yet committed

        async def checkpoint() -> None:
            async with writer.begin():
                await run_on(
                    writer,
                    steps.record_step_outcome,
                    stale,
                    completed_step(record.run_id, "charge", "stale"),
                    now=expired,
                )

        pending = asyncio.create_task(checkpoint())
        await asyncio.sleep(0.3)
        assert not pending.done(), "the stale checkpoint did not wait for the claim's row lock"
        await claimer.commit()
        with pytest.raises(LeaseLost):
            await pending

    async with engine.connect() as conn:
        assert await run_on(conn, steps.load_run_outcomes, record.run_id) == {}
    assert taken.lease.owner == "w2"
