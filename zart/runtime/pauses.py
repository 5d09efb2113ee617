"""Enforcing pause rules: a step that matches an active rule does not start.

Each worker keeps the active rules in memory (:class:`PauseRules`), so the check before a step
costs nothing when there are none and a few string comparisons when there are. The worker
reloads them when told they changed (a NOTIFY on PostgreSQL; at once for rules changed through
the same scheduler) and at every poll interval.

A step that matches is *held*: the run stores a hold on the rule (a timer at the rule's expiry,
or at the next re-check for a rule without one) only if the rule is still active in the
database, then suspends like any durable wait, letting the steps already running in parallel
branches finish first. The execution waits until the rule expires or is removed (removal wakes
it), then replays and checks again. A rule the worker still remembered but that is gone from
the database holds nothing: the step runs.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from zart.logs import log
from zart.repositories import pause_rules as pause_rules_repo
from zart.repositories.records import PauseRuleRecord

if TYPE_CHECKING:  # pragma: no cover
    from zart.runtime.execution import RunState

#: A held execution without a rule expiry replays this often to look again (a safety net: the
#: removal of a rule wakes its executions at once).
PAUSE_RECHECK = timedelta(minutes=5)


def rule_matches(rule: PauseRuleRecord, execution_id: str, task_name: str, step: str) -> bool:
    """Whether ``rule`` covers step ``step`` of that execution (every set field must match;
    ``step_pattern`` is a glob: ``send-*`` matches ``send-email``)."""
    return (
        (rule.execution_id is None or rule.execution_id == execution_id)
        and (rule.task_name is None or rule.task_name == task_name)
        and (rule.step_pattern is None or fnmatch.fnmatchcase(step, rule.step_pattern))
    )


class PauseRules:
    """The active pause rules one process knows, matched in memory before every step."""

    def __init__(self) -> None:
        self.rules: tuple[PauseRuleRecord, ...] = ()
        self._loaded_at: float | None = None

    def replace(self, rules: Iterable[PauseRuleRecord]) -> None:
        self.rules = tuple(rules)
        self._loaded_at = time.monotonic()

    def mark_stale(self) -> None:
        """Reload before the next claim (the rules changed somewhere)."""
        self._loaded_at = None

    async def refresh(self, engine: AsyncEngine, now: datetime, *, max_age: float) -> None:
        """Reload the active rules if told they changed or last loaded over ``max_age``
        seconds ago (one small query)."""
        loaded = self._loaded_at
        if loaded is not None and time.monotonic() - loaded < max_age:
            return
        async with engine.connect() as conn:
            self.replace(await pause_rules_repo.list_rules(conn, now=now))

    def matching(
        self, execution_id: str, task_name: str, step: str, now: datetime
    ) -> PauseRuleRecord | None:
        for rule in self.rules:
            if rule.is_active(now) and rule_matches(rule, execution_id, task_name, step):
                return rule
        return None

    async def hold_if_paused(self, state: RunState, step: str) -> None:
        """Suspend the run before ``step`` starts if an active rule covers it."""
        execution = state.execution
        now = state.clock.now()
        rule = self.matching(execution.execution_id, execution.task_name, step, now)
        if rule is None:
            return
        fire_at = now + PAUSE_RECHECK
        if rule.expires_at is not None and rule.expires_at < fire_at:
            fire_at = rule.expires_at
        async with state.runtime.transaction() as conn:
            held = await pause_rules_repo.hold_execution(
                conn,
                rule_id=rule.rule_id,
                execution_id=execution.execution_id,
                run_id=execution.run_id,
                fire_at=fire_at,
                now=now,
            )
        if not held:  # removed meanwhile: forget it and run the step
            self.rules = tuple(r for r in self.rules if r.rule_id != rule.rule_id)
            self.mark_stale()
            return
        log(
            "step_paused",
            f"step {step!r} held by pause rule {rule.rule_id}",
            execution_id=execution.execution_id,
            step=step,
            rule_id=rule.rule_id,
        )
        await state.park()
