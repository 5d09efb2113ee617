"""Bulk actions by filter: cancel, restart, retry a step of many executions at once.

One body per action: a bulk action walks the executions that match its filter in keyset
pages (by id) and applies the single action (:meth:`~zart.DurableScheduler.cancel`,
:meth:`~zart.DurableScheduler.restart`, :meth:`~zart.DurableScheduler.retry_step`) to each, so
each execution's action is its own transaction, exactly as if it had been asked for alone: a
crash halfway leaves every execution either done or untouched, and running it again does the
rest. An execution that changed meanwhile (finished before its cancel, no longer failed) is
skipped with the reason. See ``docs/operations.md``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from zart.durations import format_duration, parse_duration
from zart.errors import (
    ConfigurationError,
    ExecutionNotFound,
    InvalidExecutionState,
    InvalidPayload,
    StepNotFound,
)
from zart.logs import log
from zart.models import ExecutionStatus
from zart.models.names import check_name, check_tags
from zart.repositories import executions as executions_repo
from zart.repositories import retention as retention_repo
from zart.repositories.executions import ACTIVE, ExecutionFilter
from zart.repositories.records import ExecutionRecord
from zart.repositories.retention import FINISHED
from zart.scheduler.admin import AdminOperations
from zart.worker.pruning import prune

#: Executions read per keyset page of a bulk action.
BULK_PAGE = 100


@dataclass(frozen=True, slots=True)
class BulkResult:
    """What a bulk action did: ``matched`` executions matched its filter when it began;
    ``done`` lists those it acted on and ``skipped`` those it left, with why (they changed
    meanwhile). With ``dry_run`` nothing was changed and ``done`` is empty."""

    action: str
    matched: int
    done: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What :meth:`~zart.DurableScheduler.prune` did: ``matched`` finished executions were
    old enough when it began; ``deleted`` of them were deleted (none with ``dry_run``)."""

    matched: int
    deleted: int
    dry_run: bool = False


def execution_filter(
    *,
    status: ExecutionStatus | str | None = None,
    task_name: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    search: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> ExecutionFilter:
    """The filter of a listing or a bulk action, checked: a bad status, task name or tag
    raises :class:`~zart.InvalidPayload` naming it."""
    try:
        wanted = None if status is None else ExecutionStatus(status)
    except ValueError:
        choices = ", ".join(s.value for s in ExecutionStatus)
        raise InvalidPayload(f"unknown status {status!r}; one of: {choices}") from None
    if task_name is not None:
        check_name(task_name, "task name")
    if created_from is not None and created_to is not None and created_from > created_to:
        raise InvalidPayload(
            f"created_from ({created_from.isoformat()}) is after created_to"
            f" ({created_to.isoformat()})"
        )
    return ExecutionFilter(
        status=wanted,
        task_name=task_name,
        created_from=created_from,
        created_to=created_to,
        search=search,
        tags=check_tags(tags, "the tags filter"),
    )


class BulkOperations(AdminOperations):
    """The bulk part of :class:`~zart.DurableScheduler`."""

    if TYPE_CHECKING:  # the single actions of DurableScheduler that a bulk one applies

        async def cancel(self, execution_id: str) -> bool: ...
        async def status(self, execution_id: str) -> ExecutionRecord: ...

    async def cancel_many(
        self,
        *,
        status: ExecutionStatus | str | None = None,
        task_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        dry_run: bool = False,
    ) -> BulkResult:
        """Cancel every unfinished execution that matches (``status`` one of ``scheduled``,
        ``running``, ``waiting``; all three when not given), each as :meth:`cancel` would,
        its ``on_cancel`` included. At least one filter is required."""
        where = execution_filter(
            status=status,
            task_name=task_name,
            tags=tags,
            created_from=created_from,
            created_to=created_to,
        )
        if where.status is not None and where.status not in ACTIVE:
            raise InvalidPayload(
                f"only unfinished executions can be cancelled, not {where.status.value} ones"
            )

        async def cancel(execution_id: str) -> str | None:
            return None if await self.cancel(execution_id) else "it had already finished"

        return await self._bulk("cancel", replace(where, statuses=ACTIVE), cancel, dry_run)

    async def restart_many(
        self,
        *,
        status: ExecutionStatus | str = ExecutionStatus.FAILED,
        task_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        triggered_by: str | None = None,
        dry_run: bool = False,
    ) -> BulkResult:
        """Restart every finished execution that matches, each in a new run with its current
        payload, as :meth:`restart` would (``status``: ``failed`` by default, or
        ``cancelled`` or ``completed``). At least one filter besides ``status`` is required,
        so a bare call cannot restart every failure ever stored."""
        where = execution_filter(
            status=status,
            task_name=task_name,
            tags=tags,
            created_from=created_from,
            created_to=created_to,
        )
        if where.status is None or not where.status.is_terminal:
            raise InvalidPayload(
                f"only finished executions can be restarted in bulk, not {status} ones"
            )
        current = where.status

        async def restart(execution_id: str) -> str | None:
            record = await self.status(execution_id)
            if record.status is not current:
                return f"it is {record.status.value} now"
            await self.restart(execution_id, triggered_by=triggered_by)
            return None

        return await self._bulk("restart", where, restart, dry_run, required=1)

    async def retry_step_many(
        self,
        step_name: str,
        *,
        task_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        triggered_by: str | None = None,
        dry_run: bool = False,
    ) -> BulkResult:
        """Run the failed step ``step_name`` once more in every failed execution that matches,
        as :meth:`retry_step` would; a failed execution whose step ``step_name`` did not fail
        is skipped, saying so. At least one filter is required."""
        check_name(step_name, "step name")
        where = execution_filter(
            status=ExecutionStatus.FAILED,
            task_name=task_name,
            tags=tags,
            created_from=created_from,
            created_to=created_to,
        )

        async def retry(execution_id: str) -> str | None:
            await self.retry_step(execution_id, step_name, triggered_by=triggered_by)
            return None

        return await self._bulk("retry-step", where, retry, dry_run, required=1)

    async def prune(
        self,
        older_than: timedelta | float | str = "30d",
        *,
        status: ExecutionStatus | str | None = None,
        task_name: str | None = None,
        dry_run: bool = False,
    ) -> PruneResult:
        """Delete the finished executions (``completed``, ``failed`` and ``cancelled``, or
        only ``status``) that finished more than ``older_than`` ago, with all their runs,
        steps, attempts, timers and events, in batches of one transaction each. Workers do
        the same in the background for handlers with a ``retention`` (and with the worker
        option ``retention``); see ``docs/operations.md``."""
        try:
            kept = parse_duration(older_than, name="older_than")
        except ConfigurationError as exc:
            raise InvalidPayload(str(exc)) from None
        if kept <= timedelta(0):
            raise InvalidPayload(f"older_than must be positive, not {older_than!r}")
        where = execution_filter(status=status, task_name=task_name)
        if where.status is not None and not where.status.is_terminal:
            raise InvalidPayload(
                f"only finished executions can be pruned, not {where.status.value} ones"
            )
        chosen = FINISHED if where.status is None else (where.status,)
        before = self.clock.now() - kept
        async with self.store.reading() as db:
            matched = await db.run(
                retention_repo.count_prunable,
                before=before,
                statuses=chosen,
                task_name=task_name,
            )
        if dry_run:
            return PruneResult(matched, 0, dry_run=True)
        deleted = await prune(self.store, before, statuses=chosen, task_name=task_name)
        log(
            "executions_pruned",
            f"pruned {deleted} finished execution(s)",
            deleted=deleted,
            older_than=format_duration(kept),
        )
        return PruneResult(matched, deleted)

    async def _bulk(
        self,
        action: str,
        where: ExecutionFilter,
        apply: Callable[[str], Awaitable[str | None]],
        dry_run: bool,
        *,
        required: int = 0,
    ) -> BulkResult:
        """Apply ``apply`` (which returns why it skipped, or ``None``) to every execution that
        matches ``where``, one transaction each, in keyset pages. ``required``: how many of
        the filter's fields the action fixed itself (they do not count as the caller's)."""
        named = [
            where.status,
            where.task_name,
            where.tags or None,
            where.created_from,
            where.created_to,
        ]
        if sum(value is not None for value in named) <= required:
            raise InvalidPayload(
                f"bulk {action} needs a filter (a task name, tags or a time range) so that it"
                " cannot change every execution by accident"
            )
        async with self.store.reading() as db:
            matched = await db.run(executions_repo.count_matching, where)
        if dry_run:
            return BulkResult(action, matched, dry_run=True)
        done: list[str] = []
        skipped: list[tuple[str, str]] = []
        after: str | None = None
        while True:
            async with self.store.reading() as db:
                page = await db.run(
                    executions_repo.matching_ids, where, after=after, limit=BULK_PAGE
                )
            for execution_id in page:
                try:
                    reason = await apply(execution_id)
                except (ExecutionNotFound, InvalidExecutionState, StepNotFound) as exc:
                    reason = str(exc)
                if reason is None:
                    done.append(execution_id)
                else:
                    skipped.append((execution_id, reason))
            if len(page) < BULK_PAGE:
                break
            after = page[-1]
        log(
            "bulk_action_done",
            f"bulk {action}: {len(done)} done, {len(skipped)} skipped of {matched} matched",
            bulk=action,
            done=len(done),
            skipped=len(skipped),
        )
        return BulkResult(action, matched, tuple(done), tuple(skipped))
