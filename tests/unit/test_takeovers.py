"""The claim loop's takeover policy, a pure function of the claims it saw and of time; and the
``max_claims`` options."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import zart
from zart.models import ExecutionStatus
from zart.repositories.records import ClaimedExecution, ExecutionRecord, Lease
from zart.worker import WorkerSettings
from zart.worker.takeovers import Takeovers

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def claimed(execution_id: str, previous: ExecutionStatus) -> ClaimedExecution:
    record = ExecutionRecord(
        execution_id=execution_id,
        task_name="t",
        status=ExecutionStatus.RUNNING,
        payload=None,
        result=None,
        error=None,
        run_id="r",
        run_count=1,
        created_at=T0,
        updated_at=T0,
        completed_at=None,
        deadline_at=None,
        claimable_at=None,
        lease_owner="w",
        claim_count=2,
        version=2,
    )
    return ClaimedExecution(Lease(execution_id, "token", "w", T0), record, previous)


def test_a_claim_asks_for_one_takeover_then_waits_a_poll_interval_after_a_miss() -> None:
    policy = Takeovers(poll_interval=0.5, probation=10)
    assert policy.wanted(T0) == 1
    policy.claimed(1, [claimed("fresh", ExecutionStatus.SCHEDULED)], T0)
    assert policy.wanted(T0 + timedelta(seconds=0.4)) == 0
    assert policy.wanted(T0 + timedelta(seconds=0.5)) == 1


def test_no_other_takeover_while_one_is_on_probation() -> None:
    policy = Takeovers(poll_interval=0.5, probation=10)
    policy.claimed(1, [claimed("suspect", ExecutionStatus.RUNNING)], T0)
    assert policy.wanted(T0 + timedelta(seconds=1)) == 0
    assert policy.ended("someone-else") is False
    assert policy.wanted(T0 + timedelta(seconds=1)) == 0
    assert policy.ended("suspect") is True  # its run ended: the next one at once
    assert policy.wanted(T0 + timedelta(seconds=1)) == 1


def test_probation_ends_after_its_time() -> None:
    policy = Takeovers(poll_interval=0.5, probation=10)
    policy.claimed(1, [claimed("suspect", ExecutionStatus.RUNNING)], T0)
    assert policy.wanted(T0 + timedelta(seconds=9.9)) == 0
    assert policy.wanted(T0 + timedelta(seconds=10)) == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_a_handlers_max_claims_is_a_whole_number_of_at_least_one(bad: object) -> None:
    with pytest.raises(zart.ConfigurationError, match="max_claims"):
        zart.durable("bad-max-claims", max_claims=bad)  # type: ignore[arg-type]


def test_the_workers_max_claims_defaults_to_five_and_is_at_least_one() -> None:
    assert WorkerSettings().max_claims == 5
    with pytest.raises(zart.ConfigurationError, match="max_claims"):
        WorkerSettings(max_claims=0)
    assert zart.Settings(max_claims=2).worker_settings().max_claims == 2
