"""Holding an execution whose replay left its recorded history (:mod:`zart.runtime.paths`).

Nothing of the diverging pass is finished or failed: the run stores a hold on its divergence
rule (:mod:`zart.repositories.divergences`) and suspends like any durable wait, the steps
already running in other branches storing their outcomes first. The execution then waits for
an operator: ``resume_diverged`` (after a fix is deployed: it replays again) or
``fail_diverged``.
"""

from __future__ import annotations

from datetime import timedelta

from zart.logs import log
from zart.repositories import divergences
from zart.runtime.run import RunState

#: A held execution's hold timer fires this far ahead: in practice never; the operator's
#: ``resume_diverged`` makes it due at once.
HELD_FOR = timedelta(days=365 * 100)


async def hold_diverged(state: RunState) -> None:
    """Store the hold of ``state``'s execution on its divergence (the run then suspends)."""
    error = state.diverged
    assert error is not None
    execution = state.execution
    now = state.clock.now()
    rule = await state.runtime.write(
        divergences.hold_diverged,
        execution_id=execution.execution_id,
        run_id=execution.run_id,
        reason=str(error),
        fire_at=now + HELD_FOR,
        now=now,
    )
    log(
        "execution_diverged",
        f"replay diverged, execution held for an operator: {error}",
        level=30,
        execution_id=execution.execution_id,
        task_name=execution.task_name,
        step_name=error.step,
        rule_id=rule.rule_id,
    )
