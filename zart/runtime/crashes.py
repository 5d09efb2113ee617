"""Crash loops: an execution whose claims keep ending without a report (its worker died, was
killed or lost its lease while the run was in flight) is failed instead of claimed for ever.

The claim counts those claims (``crashed_claims``, :mod:`zart.repositories.claims`): one more
when it takes over a ``running`` row whose lease expired, back to 0 for any other claim (the
run before it suspended, finished or was handed back). Two records tell the story:

- the first step a taken-over run runs anew (the one in flight at the crash, as the replay of
  a deterministic handler reaches it again) gets a ``crashed`` attempt before it is tried
  again (:func:`crashed_attempt`): stored, it is the same checkpoint as any attempt's;
- the claim that finds ``crashed_claims`` at the handler's ``max_claims`` (else the worker's)
  runs no handler code: each step still in flight gets its last ``crashed`` attempt and fails,
  and the execution fails with an error of kind ``crash_loop`` naming them
  (:func:`end_crash_loop`).

What is not known is not made up: a crash in the handler's own code, or before its first new
step, records no attempt, and the error says so.
"""

from __future__ import annotations

from typing import Any

from zart.logs import log
from zart.models import AttemptStatus, StepStatus
from zart.repositories import steps as steps_repo
from zart.repositories.records import AttemptOutcome, StepRecord
from zart.runtime.run import RunState

#: Claims in a row that may end without a report before the execution fails (the worker's
#: default ``max_claims``; a handler's ``@zart.durable(..., max_claims=N)`` wins).
DEFAULT_MAX_CLAIMS = 5


def crashed_error(name: str, claim: int) -> dict[str, Any]:
    """The error of a ``crashed`` attempt of step ``name``, found by claim number ``claim``."""
    return {
        "kind": "crashed",
        "message": f"the worker running step {name!r} died or lost its lease; claim {claim}"
        " of the execution found it",
    }


def crashed_attempt(state: RunState, name: str, attempt: int) -> AttemptOutcome:
    """The ``crashed`` attempt number ``attempt`` of step ``name``, found by this claim."""
    now = state.clock.now()
    error = crashed_error(name, state.execution.claim_count)
    log(
        "step_crashed",
        f"step {name!r} was in flight when the last claim ended without a report",
        level=30,
        execution_id=state.execution.execution_id,
        task_name=state.execution.task_name,
        step_name=name,
        attempt=attempt,
    )
    return AttemptOutcome(attempt, AttemptStatus.CRASHED, now, now, error=error)


async def end_crash_loop(state: RunState, max_claims: int) -> dict[str, Any]:
    """Record the last crash of each step still in flight (a ``crashed`` attempt; the step
    fails) and return the execution's ``crash_loop`` error. Runs no handler code."""
    execution = state.execution
    claims = execution.crashed_claims
    in_flight = sorted(
        (r for r in state.outcomes.values() if r.status is StepStatus.RUNNING),
        key=lambda r: r.position,
    )
    for record in in_flight:
        await _fail_in_flight(state, record, claims)
    found = await state.runtime.store.run(steps_repo.list_step_attempts, in_flight)
    crashes = [
        {"step": r.name, "attempt": a.attempt_number, "found_at": a.completed_at.isoformat()}
        for r in in_flight
        for a in found.get(r.step_id, [])
        if a.status is AttemptStatus.CRASHED
    ]
    names = [r.name for r in in_flight]
    if names:
        where = ", ".join(repr(n) for n in names)
        known = f"in flight at the crashes: step {where} ({len(crashes)} crashed attempts)"
    else:
        known = "no step was in flight (the crash is in the handler's own code)"
    message = (
        f"{claims} claims in a row ended without the worker reporting back (max_claims"
        f" {max_claims}): the execution failed as a crash loop; {known}"
    )
    log(
        "execution_crash_loop",
        message,
        level=40,
        execution_id=execution.execution_id,
        task_name=execution.task_name,
        step_name=names[0] if names else None,
        claims=claims,
    )
    return {
        "kind": "crash_loop",
        "message": message,
        "claims": claims,
        "max_claims": max_claims,
        "steps": names,
        "crashes": crashes,
    }


async def _fail_in_flight(state: RunState, record: StepRecord, claims: int) -> None:
    error = crashed_error(record.name, state.execution.claim_count)
    now = state.clock.now()
    attempt = AttemptOutcome(record.attempts, AttemptStatus.CRASHED, now, now, error=error)
    failure = {
        "kind": "crash_loop",
        "message": f"step {record.name!r} was in flight when the worker died; after {claims}"
        " such claims in a row the execution failed as a crash loop",
    }
    outcome = state.outcome(
        record.name,
        record.kind,
        StepStatus.FAILED,
        record.position,
        attempts=record.attempts + 1,
        error=failure,
        deadline_at=record.deadline_at,
        completed_at=now,
    )
    await state.checkpoint(outcome, attempt)
