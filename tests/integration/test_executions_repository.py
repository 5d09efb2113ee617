"""The executions repository against real databases (rolled-back transaction per test)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.factories import LEASE, T0, claim, claim_only, new_execution, new_id, run_on
from zart.errors import ExecutionAlreadyExists, LeaseLost
from zart.models import ExecutionStatus, RunTrigger
from zart.repositories import executions, runs
from zart.repositories import leases as leases_repo
from zart.repositories.executions import ExecutionFilter
from zart.repositories.store import Store


async def test_create_stores_the_execution_and_its_first_run(store: Store) -> None:
    record = await new_execution(store, payload={"email": "x@y.z", "n": [1, 2]})

    assert record.status is ExecutionStatus.SCHEDULED
    assert record.payload == {"email": "x@y.z", "n": [1, 2]}
    assert record.created_at == T0
    assert record.claimable_at == T0
    (run,) = await run_on(store, runs.list_runs, record.execution_id)
    assert run.run_id == record.run_id
    assert run.run_index == 1
    assert run.trigger is RunTrigger.INITIAL


async def test_create_with_same_task_and_payload_returns_the_existing_one(
    store: Store,
) -> None:
    first = await new_execution(store, execution_id="signup-42")

    again = await run_on(
        store,
        executions.create_execution,
        execution_id="signup-42",
        task_name="onboarding",
        payload={"email": "a@b.c"},
        now=T0 + timedelta(minutes=5),
    )

    assert again.created is False
    assert again.execution == first
    assert [r.run_id for r in await run_on(store, runs.list_runs, "signup-42")] == [first.run_id]


@pytest.mark.parametrize(
    ("task_name", "payload", "reason"),
    [
        ("other-task", {"email": "a@b.c"}, "runs task 'onboarding'"),
        ("onboarding", {"email": "other@b.c"}, "different payload"),
    ],
)
async def test_create_with_a_different_task_or_payload_is_refused(
    store: Store, task_name: str, payload: object, reason: str
) -> None:
    await new_execution(store, execution_id="signup-43")

    with pytest.raises(ExecutionAlreadyExists, match=reason):
        await run_on(
            store,
            executions.create_execution,
            execution_id="signup-43",
            task_name=task_name,
            payload=payload,
            now=T0,
        )

    # The refused insert did not abort the caller's transaction, and changed nothing.
    stored = await run_on(store, executions.get_execution, "signup-43")
    assert stored is not None
    assert stored.task_name == "onboarding"
    assert stored.payload == {"email": "a@b.c"}


async def test_list_filters_sorts_and_counts(store: Store) -> None:
    ids = []
    for i in range(5):
        record = await new_execution(
            store,
            execution_id=new_id(f"list{i}"),
            task_name="report" if i % 2 else "onboarding",
            now=T0 + timedelta(seconds=i),
        )
        ids.append(record.execution_id)

    page = await run_on(
        store,
        executions.list_executions,
        ExecutionFilter(task_name="report", created_from=T0),
        limit=1,
    )
    assert page.total == 2
    assert [r.execution_id for r in page.items] == [ids[3]]

    page = await run_on(
        store,
        executions.list_executions,
        ExecutionFilter(search="LIST2", created_from=T0),
        descending=False,
    )
    assert [r.execution_id for r in page.items] == [ids[2]]

    page = await run_on(
        store,
        executions.list_executions,
        ExecutionFilter(
            created_from=T0 + timedelta(seconds=1), created_to=T0 + timedelta(seconds=3)
        ),
        sort_by="created_at",
        descending=False,
    )
    assert [r.execution_id for r in page.items] == ids[1:4]


async def test_search_treats_like_wildcards_literally(store: Store) -> None:
    await new_execution(store, execution_id="literal_under")
    await new_execution(store, execution_id="literalXunder")

    page = await run_on(store, executions.list_executions, ExecutionFilter(search="literal_"))

    assert [r.execution_id for r in page.items] == ["literal_under"]


async def test_count_by_status_lists_every_status(store: Store) -> None:
    before = await run_on(store, executions.count_executions_by_status)
    record = await new_execution(store)
    await run_on(store, executions.cancel_execution, record.execution_id, now=T0)

    after = await run_on(store, executions.count_executions_by_status)

    assert set(after) == set(ExecutionStatus)
    assert after[ExecutionStatus.CANCELLED] == before[ExecutionStatus.CANCELLED] + 1


async def test_claim_takes_due_executions_of_known_tasks_only(store: Store) -> None:
    due = await new_execution(store)
    await new_execution(store, claimable_at=T0 + timedelta(hours=1))  # not yet due
    await new_execution(store, task_name="someone-elses-task")

    claimed = await claim(store, now=T0 + timedelta(seconds=1))

    assert [c.execution.execution_id for c in claimed] == [due.execution_id]
    (only,) = claimed
    assert only.execution.status is ExecutionStatus.RUNNING
    assert only.execution.lease_owner == "worker-a"
    assert only.execution.claim_count == 1
    assert only.lease.expires_at == T0 + timedelta(seconds=1) + LEASE
    assert only.execution.claimable_at == only.lease.expires_at
    assert await claim(store, now=T0 + timedelta(seconds=2)) == []


async def test_an_expired_lease_is_taken_over_by_another_worker(store: Store) -> None:
    record = await new_execution(store)
    first = await claim_only(store, record.execution_id, worker_id="worker-a")

    early = T0 + LEASE - timedelta(seconds=1)
    assert await claim(store, worker_id="worker-b", now=early, takeovers=1) == []
    # Only a claim that asks for takeovers takes a running row whose lease expired.
    assert await claim(store, worker_id="worker-b", now=T0 + LEASE) == []
    (second,) = await claim(store, worker_id="worker-b", now=T0 + LEASE, takeovers=1)

    assert second.lease.token != first.token
    assert second.previous_status is ExecutionStatus.RUNNING
    assert second.execution.crashed_claims == 1  # the first claim never reported back
    stored = await run_on(store, executions.get_execution, record.execution_id)
    assert stored is not None
    assert stored.lease_owner == "worker-b"
    assert (stored.claim_count, stored.crashed_claims) == (2, 1)


async def test_crashed_claims_count_takeovers_in_a_row_and_reset_after_a_report(
    store: Store,
) -> None:
    record = await new_execution(store)
    await claim_only(store, record.execution_id)
    now = T0
    for crashed in (1, 2, 3):  # each claim's worker dies: its lease expires unreported
        now += LEASE
        (taken,) = await claim(store, now=now, takeovers=1)
        assert taken.execution.crashed_claims == crashed

    await run_on(store, leases_repo.release_lease, taken.lease, now=now)  # this one reported back
    (again,) = await claim(store, now=now, takeovers=1)

    assert again.previous_status is ExecutionStatus.SCHEDULED
    assert (again.execution.claim_count, again.execution.crashed_claims) == (5, 0)


async def test_a_takeover_is_claimed_before_a_backlog_of_due_starts(store: Store) -> None:
    dead = await new_execution(store, execution_id="dead-workers")
    await claim_only(store, dead.execution_id, worker_id="dead")
    # A backlog of starts all due before the dead worker's lease expires: ordered by
    # claimable_at alone, the takeover would come after every one of them.
    backlog = [
        await new_execution(store, claimable_at=T0 + timedelta(seconds=i)) for i in range(1, 21)
    ]

    first = await claim(store, now=T0 + LEASE, limit=5, takeovers=1)

    assert [c.execution.execution_id for c in first] == [
        dead.execution_id,
        *(b.execution_id for b in backlog[:4]),
    ]
    assert [c.previous_status for c in first][:2] == [
        ExecutionStatus.RUNNING,
        ExecutionStatus.SCHEDULED,
    ]


async def test_executions_that_died_together_are_taken_over_one_per_claim(store: Store) -> None:
    together = [await new_execution(store) for _ in range(3)]
    batch = await claim(store, worker_id="dead")  # one claim: one lease expiry for all
    assert len(batch) == 3

    taken = await claim(store, now=T0 + LEASE, limit=50, takeovers=1)

    assert len(taken) == 1
    assert taken[0].execution.execution_id in {e.execution_id for e in together}
    assert taken[0].previous_status is ExecutionStatus.RUNNING


async def test_heartbeat_renews_held_leases_and_reports_lost_ones(
    store: Store,
) -> None:
    taken = await new_execution(store)
    kept = await new_execution(store, claimable_at=T0 + timedelta(seconds=10))
    taken_lease = await claim_only(store, taken.execution_id)
    kept_lease = await claim_only(store, kept.execution_id, now=T0 + timedelta(seconds=10))
    leases = [taken_lease, kept_lease]
    # taken's lease expires first and worker-b takes it over
    await claim_only(store, taken.execution_id, worker_id="worker-b", now=T0 + LEASE, takeovers=1)

    renewed, lost = await run_on(
        store, leases_repo.renew_leases, leases, now=T0 + LEASE, lease_timeout=LEASE
    )

    assert [lease.execution_id for lease in renewed] == [kept.execution_id]
    assert renewed[0].expires_at == T0 + 2 * LEASE
    assert lost == [taken_lease]


async def test_a_stale_lease_cannot_finish_and_changes_nothing(store: Store) -> None:
    record = await new_execution(store)
    stale = await claim_only(store, record.execution_id, worker_id="worker-a")
    (fresh,) = await claim(store, worker_id="worker-b", now=T0 + LEASE, takeovers=1)
    before = await run_on(store, executions.get_execution, record.execution_id)

    with pytest.raises(LeaseLost):
        await run_on(
            store,
            leases_repo.finish_execution,
            stale,
            execution=before,
            status=ExecutionStatus.COMPLETED,
            result="stale",
            now=T0 + LEASE,
        )
    with pytest.raises(LeaseLost):
        await run_on(store, leases_repo.release_lease, stale, now=T0 + LEASE)

    assert await run_on(store, executions.get_execution, record.execution_id) == before
    done = await run_on(
        store,
        leases_repo.finish_execution,
        fresh.lease,
        execution=fresh.execution,
        status=ExecutionStatus.COMPLETED,
        result={"ok": True},
        now=T0 + LEASE,
    )
    assert done.status is ExecutionStatus.COMPLETED
    assert done.result == {"ok": True}
    assert done.claimable_at is None
    assert done.lease_owner is None
    (run,) = await run_on(store, runs.list_runs, record.execution_id)
    assert run.status is ExecutionStatus.COMPLETED
    assert run.result == {"ok": True}
    assert run.completed_at == T0 + LEASE


async def test_release_makes_the_execution_claimable_again(store: Store) -> None:
    record = await new_execution(store)
    lease = await claim_only(store, record.execution_id)

    await run_on(store, leases_repo.release_lease, lease, now=T0 + timedelta(seconds=3))

    stored = await run_on(store, executions.get_execution, record.execution_id)
    assert stored is not None
    assert stored.status is ExecutionStatus.SCHEDULED
    assert stored.claimable_at == T0 + timedelta(seconds=3)
    assert stored.lease_owner is None
    assert await claim_only(store, record.execution_id, now=T0 + timedelta(seconds=3))


async def test_cancel_fences_out_the_running_worker(store: Store) -> None:
    record = await new_execution(store)
    (claimed,) = await claim(store)

    cancelled = await run_on(store, executions.cancel_execution, record.execution_id, now=T0)

    assert cancelled is not None
    assert cancelled.status is ExecutionStatus.CANCELLED
    assert cancelled.claimable_at is None
    with pytest.raises(LeaseLost):
        await run_on(
            store,
            leases_repo.finish_execution,
            claimed.lease,
            execution=claimed.execution,
            status=ExecutionStatus.COMPLETED,
            now=T0,
        )
    assert await run_on(store, executions.cancel_execution, record.execution_id, now=T0) is None
    assert await run_on(store, executions.cancel_execution, "no-such-execution", now=T0) is None
    assert await claim(store, now=T0 + 2 * LEASE, takeovers=1) == []


async def test_finished_executions_are_never_claimed(store: Store) -> None:
    await new_execution(store)
    (claimed,) = await claim(store)
    await run_on(
        store,
        leases_repo.finish_execution,
        claimed.lease,
        execution=claimed.execution,
        status=ExecutionStatus.FAILED,
        error={"message": "x"},
        now=T0,
    )

    assert await claim(store, now=T0 + timedelta(days=365)) == []


async def test_heartbeat_renews_more_leases_than_one_statement_takes(
    store: Store,
) -> None:
    count = leases_repo.RENEW_CHUNK + 250
    for i in range(count):
        await new_execution(store, execution_id=f"many-{i:05}")
    leases = [c.lease for c in await claim(store, limit=count)]
    assert len(leases) == count

    renewed, lost = await run_on(
        store,
        leases_repo.renew_leases,
        leases,
        now=T0 + timedelta(seconds=5),
        lease_timeout=LEASE,
    )

    assert lost == []
    assert {lease.execution_id for lease in renewed} == {lease.execution_id for lease in leases}
