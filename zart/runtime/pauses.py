"""Enforcing pause rules: a step that matches an active rule does not start.

Each worker keeps the active rules in memory (:class:`PauseRules`), so the check before a step
costs nothing when there are none and a few string comparisons when there are. The worker
reloads them when told they changed (a NOTIFY on PostgreSQL; at once for rules changed through
the same scheduler) and at every poll interval.

A step that matches is *held* (:meth:`zart.runtime.run.RunState.hold_if_paused`): the run
stores a hold on the rule (a timer at the rule's expiry, or at the next re-check for a rule
without one) only if the rule is still active in the database, then suspends like any durable
wait, letting the steps already running in parallel branches finish first. The execution
waits until the rule expires or is removed (removal wakes it), then replays and checks again.
A rule the worker still remembered but that is gone from the database holds nothing: the
step runs.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterable
from datetime import datetime, timedelta

from zart.repositories import pause_rules as pause_rules_repo
from zart.repositories.records import PauseRuleRecord
from zart.repositories.store import Store

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

    def forget(self, rule_id: str) -> None:
        """A rule found gone from the database: drop it, and reload before the next claim."""
        self.rules = tuple(r for r in self.rules if r.rule_id != rule_id)
        self.mark_stale()

    async def refresh(self, store: Store, now: datetime, *, max_age: float) -> None:
        """Reload the active rules if told they changed or last loaded over ``max_age``
        seconds ago (one small query, on the worker's connections)."""
        loaded = self._loaded_at
        if loaded is not None and time.monotonic() - loaded < max_age:
            return
        self.replace(await store.run(pause_rules_repo.list_rules, now=now))

    def matching(
        self, execution_id: str, task_name: str, step: str, now: datetime
    ) -> PauseRuleRecord | None:
        for rule in self.rules:
            if rule.is_active(now) and rule_matches(rule, execution_id, task_name, step):
                return rule
        return None
