"""Safe deploys on the control plane: the replay check of stored histories against the code
imported here, and the operator's answer to an execution held on a divergence (resume it
after a fix, or fail it). See ``docs/versioning.md``."""

from __future__ import annotations

from collections.abc import Sequence

from zart.errors import ExecutionNotFound, InvalidExecutionState, InvalidPayload
from zart.logs import log
from zart.repositories import divergences, wakeups
from zart.repositories import executions as executions_repo
from zart.repositories.records import ExecutionRecord, PauseRuleRecord
from zart.runtime.replays import DEFAULT_LIMIT, ReplayReport, replay_histories
from zart.scheduler.admin import AdminOperations


class VersioningOperations(AdminOperations):
    """The safe-deploy part of :class:`~zart.DurableScheduler`."""

    async def replay(
        self, *, task_names: Sequence[str] | None = None, limit: int = DEFAULT_LIMIT
    ) -> ReplayReport:
        """Replay the ``limit`` most recent executions of each task (default: every task
        registered in this process), in flight and finished, against the code imported here,
        every step answered from the stored history: no step runs, nothing is written. The
        report names each execution whose history the code no longer follows."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidPayload(f"limit must be a positive integer, not {limit!r}")
        return await replay_histories(self.runtime, self.store, task_names=task_names, limit=limit)

    async def divergence(self, execution_id: str) -> PauseRuleRecord | None:
        """The hold of an execution whose replay diverged (its ``reason`` is the verdict), or
        ``None``."""
        async with self.store.reading() as db:
            return await db.run(divergences.divergence_of, execution_id, now=self.clock.now())

    async def resume_diverged(
        self, execution_id: str, triggered_by: str | None = None
    ) -> PauseRuleRecord:
        """Release an execution held on a replay divergence (after deploying a fix): it replays
        again at once; still diverging, it is held again. Raises
        :class:`~zart.InvalidExecutionState` when no divergence holds it."""
        hold = await self._hold_of(execution_id)
        rule = await self.remove_pause_rule(hold.rule_id, triggered_by)
        log(
            "execution_resumed_diverged",
            "diverged execution resumed",
            execution_id=execution_id,
            rule_id=rule.rule_id,
            triggered_by=triggered_by,
        )
        return rule

    async def fail_diverged(
        self, execution_id: str, triggered_by: str | None = None
    ) -> ExecutionRecord:
        """Fail an execution held on a replay divergence (error kind
        ``non_deterministic_replay``, the verdict as its message). Raises
        :class:`~zart.InvalidExecutionState` when no divergence holds it (nothing changed)."""
        await self._hold_of(execution_id)
        now = self.clock.now()
        async with self.store.transaction() as db:
            record = await db.run(
                divergences.fail_diverged, execution_id, now=now, failed_by=triggered_by
            )
            if record is None:
                raise InvalidExecutionState(
                    execution_id, "it is being replayed right now; try again in a moment"
                )
            await db.run(wakeups.notify, self.runtime.channel, wakeups.PAUSE_RULES_CHANGED)
        self.runtime.pause_rules.mark_stale()
        log(
            "execution_failed_diverged",
            "diverged execution failed",
            execution_id=execution_id,
            triggered_by=triggered_by,
        )
        return record

    async def _hold_of(self, execution_id: str) -> PauseRuleRecord:
        async with self.store.reading() as db:
            if await db.run(executions_repo.get_execution, execution_id) is None:
                raise ExecutionNotFound(execution_id)
            hold = await db.run(divergences.divergence_of, execution_id, now=self.clock.now())
        if hold is None:
            raise InvalidExecutionState(
                execution_id, "no replay divergence holds it (nothing to resume or fail)"
            )
        return hold
