"""Admin operations of the control plane: retry a failed step, restart, selective rerun,
pause rules. Every one is one transaction, keeps history (runs are append-only) and fences
out a worker still running the old run. See ``docs/admin.md``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from zart.errors import (
    ExecutionNotFound,
    InvalidExecutionState,
    InvalidPayload,
    PauseRuleNotFound,
    StepNotFound,
)
from zart.logs import log
from zart.models import ExecutionStatus
from zart.models.statuses import RunTrigger, StepStatus
from zart.repositories import admin as admin_repo
from zart.repositories import pause_rules as pause_rules_repo
from zart.repositories import steps as steps_repo
from zart.repositories import wakeups
from zart.repositories.executors import ConnectionExecutor
from zart.repositories.records import (
    ExecutionRecord,
    NewRun,
    PauseRuleRecord,
    RetriedStep,
    RunRecord,
    StepRecord,
)
from zart.runtime.registry import find_handler
from zart.scheduler.base import SchedulerBase
from zart.serialization import check_size, to_json


class AdminOperations(SchedulerBase):
    """The admin part of :class:`~zart.DurableScheduler`."""

    async def retry_step(
        self, execution_id: str, step_name: str, triggered_by: str | None = None
    ) -> RetriedStep:
        """Run the failed step ``step_name`` of a failed execution's current run once more.

        No new run: the step's failure is set aside (its attempts stay in the history) and the
        execution becomes claimable; the replay returns every other stored outcome and runs
        this step again, continuing its attempt numbering. A failed event wait waits again for
        a new event of its name (the one it refused is removed), without its old deadline. Raises
        :class:`~zart.ExecutionNotFound`, :class:`~zart.StepNotFound`, or
        :class:`~zart.InvalidExecutionState` when the execution or the step has not failed.
        """
        async with self.store.transaction() as db:
            execution = await self._locked(db, execution_id)
            step = (await db.run(steps_repo.load_run_outcomes, execution.run_id)).get(step_name)
            if step is None:
                raise StepNotFound(execution_id, step_name)
            if not step.kind.retriable or step.status is not StepStatus.FAILED:
                raise InvalidExecutionState(
                    execution_id,
                    f"{step.kind.value} {step_name!r} is {step.status.value}, not a failed step",
                )
            if execution.status is not ExecutionStatus.FAILED:
                raise InvalidExecutionState(
                    execution_id,
                    f"it is {execution.status.value}; only a failed execution's"
                    " steps can be retried",
                )
            retried = await db.run(
                admin_repo.retry_failed_step,
                execution,
                step,
                deadline_at=self._fresh_deadline(execution),
                now=self.clock.now(),
            )
            await db.run(wakeups.notify, self.runtime.channel, execution.task_name)
        self._reopened(execution_id)
        log(
            "step_retry_requested",
            f"step {step_name!r} will run again",
            execution_id=execution_id,
            step=step_name,
            triggered_by=triggered_by,
        )
        return retried

    async def restart(
        self, execution_id: str, payload: Any = None, triggered_by: str | None = None
    ) -> RunRecord:
        """Start the execution over in a new run (``trigger="restart"``), with ``payload`` (or
        the current payload when ``None``), whatever its status. Earlier runs stay in the
        history; a worker still running the old run is fenced out. Raises
        :class:`~zart.ExecutionNotFound` or :class:`~zart.InvalidPayload` (nothing changes).
        """
        async with self.store.transaction() as db:
            execution = await self._locked(db, execution_id)
            stored = (
                execution.payload if payload is None else self._restart_payload(execution, payload)
            )
            run = await db.run(
                admin_repo.start_new_run,
                execution,
                trigger=RunTrigger.RESTART,
                payload=stored,
                triggered_by=triggered_by,
                preserved=(),
                deadline_at=self._fresh_deadline(execution),
                now=self.clock.now(),
            )
            await db.run(wakeups.notify, self.runtime.channel, execution.task_name)
        self._reopened(execution_id)
        log(
            "execution_restarted",
            "execution restarted",
            execution_id=execution_id,
            run_id=run.run_id,
            triggered_by=triggered_by,
        )
        return run

    async def rerun(
        self,
        execution_id: str,
        rerun_steps: list[str] | tuple[str, ...] = (),
        preserve_steps: list[str] | tuple[str, ...] = (),
        triggered_by: str | None = None,
    ) -> NewRun:
        """Start a new run (``trigger="selective_rerun"``) that keeps the stored outcomes of
        ``preserve_steps`` (copied with their attempts in the same transaction) and runs every
        other step again, named in ``rerun_steps`` or not (only what is preserved is kept).
        Steps that did not complete (failed, waiting) are always rerun, and a step named in
        both lists is refused. Raises :class:`~zart.ExecutionNotFound` or
        :class:`~zart.InvalidPayload` for a name the current run does not have.
        """
        rerun, preserve = set(rerun_steps), set(preserve_steps)
        if both := sorted(rerun & preserve):
            raise InvalidPayload(f"steps named both to rerun and to preserve: {', '.join(both)}")
        async with self.store.transaction() as db:
            execution = await self._locked(db, execution_id)
            steps = await db.run(steps_repo.list_steps, execution.run_id)
            if unknown := sorted((rerun | preserve) - {s.name for s in steps}):
                raise InvalidPayload(
                    f"execution {execution_id!r} has no step {', '.join(map(repr, unknown))}"
                    " in its current run"
                )
            kept = [s for s in steps if s.name in preserve and _preservable(s)]
            run = await db.run(
                admin_repo.start_new_run,
                execution,
                trigger=RunTrigger.SELECTIVE_RERUN,
                payload=execution.payload,
                triggered_by=triggered_by,
                preserved=kept,
                deadline_at=self._fresh_deadline(execution),
                now=self.clock.now(),
            )
            await db.run(wakeups.notify, self.runtime.channel, execution.task_name)
        self._reopened(execution_id)
        kept_names = {s.name for s in kept}
        log(
            "execution_rerun",
            "execution rerun",
            execution_id=execution_id,
            run_id=run.run_id,
            preserved=sorted(kept_names),
            triggered_by=triggered_by,
        )
        return NewRun(
            run=run,
            preserved_steps=tuple(s.name for s in kept),
            rerun_steps=tuple(s.name for s in steps if s.name not in kept_names),
        )

    async def pause(
        self,
        *,
        execution_id: str | None = None,
        task_name: str | None = None,
        step_pattern: str | None = None,
        expires_at: datetime | None = None,
        reason: str | None = None,
        triggered_by: str | None = None,
    ) -> PauseRuleRecord:
        """Hold back steps matching every given field (an execution, a task, a step-name glob
        such as ``"send-*"``) until the rule is removed or ``expires_at`` passes.

        Enforced: a matching step does not start; its execution waits (``waiting``) and
        resumes when the rule goes. A step already running is not interrupted. Workers of
        this scheduler see the rule at once; other workers on their next poll (at once on
        PostgreSQL, which notifies them). Raises :class:`~zart.InvalidPayload` for a rule
        without scope or an expiry that is not in the future.
        """
        now = self.clock.now()
        _check_rule(execution_id, task_name, step_pattern, expires_at, reason, triggered_by, now)
        async with self.store.transaction() as db:
            rule = await db.run(
                pause_rules_repo.create_rule,
                rule_id=str(uuid.uuid4()),
                execution_id=execution_id,
                task_name=task_name,
                step_pattern=step_pattern,
                reason=reason,
                triggered_by=triggered_by,
                expires_at=expires_at,
                now=now,
            )
            await db.run(wakeups.notify, self.runtime.channel, wakeups.PAUSE_RULES_CHANGED)
        rules = self.runtime.pause_rules
        rules.replace([*rules.rules, rule])
        rules.mark_stale()
        log(
            "pause_rule_created",
            "pause rule created",
            rule_id=rule.rule_id,
            triggered_by=triggered_by,
        )
        return rule

    async def list_pause_rules(self, *, include_inactive: bool = False) -> list[PauseRuleRecord]:
        """The active pause rules, oldest first (every rule ever made with
        ``include_inactive``: removed and expired ones stay for the audit trail)."""
        async with self.store.reading() as db:
            return await db.run(
                pause_rules_repo.list_rules, now=self.clock.now(), include_inactive=include_inactive
            )

    async def remove_pause_rule(
        self, rule_id: str, triggered_by: str | None = None
    ) -> PauseRuleRecord:
        """Remove (soft-delete) an active pause rule and wake the executions it held. Raises
        :class:`~zart.PauseRuleNotFound` when no active rule has this id."""
        now = self.clock.now()
        async with self.store.transaction() as db:
            rule = await db.run(
                pause_rules_repo.remove_rule, rule_id, now=now, removed_by=triggered_by
            )
            if rule is None:
                raise PauseRuleNotFound(rule_id)
            await db.run(pause_rules_repo.release_holds, rule_id, now=now)
            await db.run(wakeups.notify, self.runtime.channel, wakeups.PAUSE_RULES_CHANGED)
        rules = self.runtime.pause_rules
        rules.replace(r for r in rules.rules if r.rule_id != rule_id)
        rules.mark_stale()
        for worker in self._workers:
            worker.wake()
        log("pause_rule_removed", "pause rule removed", rule_id=rule_id, triggered_by=triggered_by)
        return rule

    async def _locked(self, db: ConnectionExecutor, execution_id: str) -> ExecutionRecord:
        execution = await db.run(admin_repo.lock_execution_record, execution_id)
        if execution is None:
            raise ExecutionNotFound(execution_id)
        return execution

    def _restart_payload(self, execution: ExecutionRecord, payload: Any) -> Any:
        target = find_handler(execution.task_name)
        stored = (
            to_json(payload, name="payload") if target is None else target.payload_from(payload)
        )
        check_size(stored, self.runtime.max_payload_bytes, name="payload")
        return stored

    def _fresh_deadline(self, execution: ExecutionRecord) -> datetime | None:
        """A reopened execution gets its handler's whole timeout again (when known here)."""
        target = find_handler(execution.task_name)
        if target is None or target.timeout is None:
            return execution.deadline_at
        return self.clock.now() + target.timeout

    def _reopened(self, execution_id: str) -> None:
        """Stop a run of ``execution_id`` still going here (it was fenced out) and claim anew."""
        for worker in self._workers:
            worker.abort(execution_id)
            worker.wake()


def _preservable(step: StepRecord) -> bool:
    """Only a completed outcome can be kept: failed and unfinished steps always run again."""
    return step.status is StepStatus.COMPLETED


def _check_rule(
    execution_id: str | None,
    task_name: str | None,
    step_pattern: str | None,
    expires_at: datetime | None,
    reason: str | None,
    triggered_by: str | None,
    now: datetime,
) -> None:
    if execution_id is None and task_name is None and step_pattern is None:
        raise InvalidPayload("a pause rule needs an execution id, a task name or a step pattern")
    for name, value, limit in (
        ("execution_id", execution_id, 255),
        ("task_name", task_name, 255),
        ("step_pattern", step_pattern, 255),
        ("triggered_by", triggered_by, 255),
        ("reason", reason, 1024),
    ):
        if value is not None and (not value or len(value) > limit or "\x00" in value):
            raise InvalidPayload(f"{name} must be 1 to {limit} characters without NUL")
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise InvalidPayload("expires_at must be timezone-aware")
        if expires_at <= now:
            raise InvalidPayload("expires_at must be in the future")
