"""``DurableScheduler``: the control plane an application holds.

It starts executions (idempotently), reports on them, waits for them, cancels them, and can run
an in-process worker. It owns its engine when given a URL and borrows it when given one.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self, TypeVar, cast

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from zart.clock import SYSTEM_CLOCK, Clock
from zart.database import (
    DEFAULT_DATABASE_URL,
    create_engine,
    in_schema,
    read_only,
    with_schema,
)
from zart.durations import parse_duration
from zart.errors import (
    ConfigurationError,
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionNotFound,
    InvalidExecutionState,
    InvalidPayload,
    PauseRuleNotFound,
    RunNotFound,
    ScheduleNotFound,
    StepNotFound,
    UnknownTask,
    WaitTimedOut,
)
from zart.logs import log
from zart.migrations import upgrade
from zart.models import CatchupPolicy, ExecutionStatus, OverlapPolicy
from zart.models.statuses import RunTrigger, StepKind, StepStatus
from zart.repositories import admin as admin_repo
from zart.repositories import events as events_repo
from zart.repositories import executions as executions_repo
from zart.repositories import pause_rules as pause_rules_repo
from zart.repositories import runs as runs_repo
from zart.repositories import schedules as schedules_repo
from zart.repositories import steps as steps_repo
from zart.repositories import wakeups
from zart.repositories import workers as workers_repo
from zart.repositories.executions import ExecutionFilter, SortField
from zart.repositories.records import (
    CreatedExecution,
    ExecutionDetail,
    ExecutionPage,
    ExecutionRecord,
    NewRun,
    PauseRuleRecord,
    RetriedStep,
    RunRecord,
    ScheduleRecord,
    StepDetail,
    StepRecord,
)
from zart.runtime.execution import DEFAULT_INLINE_WAIT_LIMIT, DEFAULT_MAX_PAYLOAD_BYTES, Runtime
from zart.runtime.registry import DurableHandler, find_handler, registered_names
from zart.schedules.cron import parse_cron
from zart.schedules.plans import DEFAULT_CATCHUP, DEFAULT_OVERLAP, ScheduleSpec, check_name
from zart.serialization import check_size, to_json
from zart.worker import Worker, WorkerSettings

#: A worker counts as alive (for starts by name) if it heartbeated this recently.
LIVE_WORKER_WINDOW = timedelta(minutes=2)

Target = DurableHandler[..., Any] | str

T = TypeVar("T")


class DurableScheduler:
    """Start, inspect, wait for and cancel durable executions; run workers in-process.

    ``DurableScheduler("postgresql+asyncpg://...")`` or ``DurableScheduler(engine=app_engine)``;
    the default database is the embedded SQLite file ``zart.db``. Use it as an async context
    manager, or call :meth:`close` when done. Waits (sleeps, retry back-offs) up to
    ``inline_wait_limit`` stay in memory on the worker; longer ones suspend the execution.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        engine: AsyncEngine | None = None,
        schema: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        inline_wait_limit: timedelta | float | str = DEFAULT_INLINE_WAIT_LIMIT,
    ) -> None:
        if url is not None and engine is not None:
            raise ConfigurationError("give a database URL or an engine, not both")
        self._owns_engine = engine is None
        base = engine if engine is not None else create_engine(url or DEFAULT_DATABASE_URL)
        self._base_engine = base
        self.schema = schema
        self.engine = with_schema(base, schema)
        self._reads = read_only(self.engine)
        self.clock = clock
        self.runtime = Runtime(
            self.engine,
            clock,
            max_payload_bytes,
            parse_duration(inline_wait_limit, name="inline_wait_limit"),
            channel=wakeups.channel_for(schema),
        )
        self._workers: list[Worker] = []
        # wait() callers, woken when an in-process worker ends a run of their execution
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        # Callers' sessions/connections whose commit will wake this scheduler's workers.
        self._wake_on_commit: weakref.WeakSet[Session | Connection] = weakref.WeakSet()
        self._closed = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop in-process workers and release the engine (if this scheduler created it)."""
        if self._closed:
            return
        self._closed = True
        for worker in list(self._workers):
            await worker.stop()
        if self._owns_engine:
            await self._base_engine.dispose()

    async def migrate(self) -> None:
        """Create or upgrade Zart's tables (the same as ``zart db upgrade``)."""
        await upgrade(self._base_engine, schema=self.schema)

    # -- starting ---------------------------------------------------------------------------

    async def start(
        self,
        handler: Target,
        payload: Any = None,
        *,
        execution_id: str | None = None,
        session: AsyncSession | AsyncConnection | None = None,
    ) -> str:
        """Start an execution of ``handler`` (a durable handler or its task name) and return
        its id.

        Idempotent by ``execution_id``: an existing execution with the same task and payload is
        returned and nothing new starts; a different task or payload raises
        :class:`~zart.ExecutionAlreadyExists`. With ``session=`` (the application's
        ``AsyncSession`` or ``AsyncConnection``) the execution row is written in the caller's
        transaction and never committed here: roll it back and nothing starts; commit it and
        workers are woken at once (NOTIFY on PostgreSQL, directly for this scheduler's
        in-process workers). On PostgreSQL Zart's statements run under a savepoint, so an
        error here (a duplicate id with another payload) leaves the caller's transaction
        usable. See ``docs/transactions.md``.
        """
        request = await _start_request(
            handler,
            payload,
            execution_id,
            max_payload_bytes=self.runtime.max_payload_bytes,
            live_task_names=self._live_task_names,
        )
        async with _transaction(self.engine, session, self.schema) as conn:
            created = await _create(
                conn, request, now=self.clock.now(), channel=self.runtime.channel
            )
        if created.created:
            self._wake_workers(session)
        return created.execution.execution_id

    def _wake_workers(self, session: AsyncSession | AsyncConnection | None) -> None:
        """Wake in-process workers now (our own transaction has committed), or when the
        caller's transaction commits."""
        if session is None:
            for worker in self._workers:
                worker.wake()
            return
        target = _sync_target(session)
        if target in self._wake_on_commit:
            return
        self._wake_on_commit.add(target)

        def ended(*_: Any) -> None:
            self._wake_on_commit.discard(target)

        def committed(*_: Any) -> None:
            if target in self._wake_on_commit:
                ended()
                for worker in self._workers:
                    worker.wake()

        # Session: after_commit runs once the database committed. A Connection only offers
        # "commit", just before it: a claim woken by it waits for the commit all the same on
        # SQLite (the caller holds the single write lock until then), and on PostgreSQL a
        # claim that ran too early is woken again by the NOTIFY delivered at commit.
        if isinstance(target, Session):
            commit, rollback = "after_commit", "after_rollback"
        else:
            commit, rollback = "commit", "rollback"
        event.listen(target, commit, committed, once=True)
        event.listen(target, rollback, ended, once=True)

    async def _live_task_names(self) -> set[str]:
        async with self._reads.connect() as conn:
            return await workers_repo.live_task_names(
                conn, seen_since=self.clock.now() - LIVE_WORKER_WINDOW
            )

    # -- reading ----------------------------------------------------------------------------

    async def status(self, execution_id: str) -> ExecutionRecord:
        """The execution as stored; :class:`~zart.ExecutionNotFound` when there is none."""
        async with self._reads.connect() as conn:
            record = await executions_repo.get_execution(conn, execution_id)
        if record is None:
            raise ExecutionNotFound(execution_id)
        return record

    async def list_executions(
        self,
        *,
        status: ExecutionStatus | str | None = None,
        task_name: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        search: str | None = None,
        sort_by: SortField = "created_at",
        descending: bool = True,
        limit: int = 20,
        offset: int = 0,
    ) -> ExecutionPage:
        """A page of executions, newest first by default, with the total number of matches."""
        if not 1 <= limit <= 1000:
            raise InvalidPayload(f"limit must be between 1 and 1000, not {limit}")
        if offset < 0:
            raise InvalidPayload(f"offset must not be negative, not {offset}")
        try:
            wanted = None if status is None else ExecutionStatus(status)
        except ValueError:
            choices = ", ".join(s.value for s in ExecutionStatus)
            raise InvalidPayload(f"unknown status {status!r}; one of: {choices}") from None
        where = ExecutionFilter(wanted, task_name, created_from, created_to, search)
        async with self._reads.connect() as conn:
            return await executions_repo.list_executions(
                conn, where, sort_by=sort_by, descending=descending, limit=limit, offset=offset
            )

    async def execution_detail(
        self, execution_id: str, run_id: str | None = None
    ) -> ExecutionDetail:
        """The execution with every run and the step timeline (steps with their attempts) of
        ``run_id``, the current run by default.

        Raises :class:`~zart.ExecutionNotFound`, or :class:`~zart.RunNotFound` when the
        execution has no run ``run_id``. Four queries in one transaction, whatever the number
        of steps.
        """
        async with self._reads.begin() as conn:
            execution = await executions_repo.get_execution(conn, execution_id)
            if execution is None:
                raise ExecutionNotFound(execution_id)
            runs = await runs_repo.list_runs(conn, execution_id)
            shown = execution.run_id if run_id is None else run_id
            if all(run.run_id != shown for run in runs):
                raise RunNotFound(execution_id, shown)
            steps = await steps_repo.list_steps(conn, shown)
            attempts = await steps_repo.list_step_attempts(conn, [s.step_id for s in steps])
        return ExecutionDetail(
            execution=execution,
            runs=tuple(runs),
            run_id=shown,
            steps=tuple(StepDetail(s, tuple(attempts[s.step_id])) for s in steps),
        )

    async def stats(self) -> dict[ExecutionStatus, int]:
        """How many executions are in each status (every status present, zero when none)."""
        async with self._reads.connect() as conn:
            return await executions_repo.count_executions_by_status(conn)

    async def wait(self, execution_id: str, timeout: float | None = 30.0) -> Any:
        """Wait for the execution to finish and return the handler's result.

        The result is rebuilt with the handler's return annotation when the handler is
        registered in this process (plain JSON otherwise). Raises
        :class:`~zart.ExecutionFailed`, :class:`~zart.ExecutionCancelled`, or
        :class:`~zart.WaitTimedOut` (the execution keeps running).
        """
        record = await self.wait_finished(execution_id, timeout)
        if record.status is ExecutionStatus.FAILED:
            raise ExecutionFailed(execution_id, record.error)
        if record.status is ExecutionStatus.CANCELLED:
            raise ExecutionCancelled(execution_id)
        handler = find_handler(record.task_name)
        return record.result if handler is None else handler.result_from_json(record.result)

    async def wait_finished(
        self, execution_id: str, timeout: float | None = 30.0
    ) -> ExecutionRecord:
        """Wait until the execution is completed, failed or cancelled and return its record.

        A worker of this scheduler wakes the wait the moment it ends a run; executions running
        elsewhere are polled (every 5 ms at first, backing off to 250 ms).
        """
        give_up = None if timeout is None else time.monotonic() + timeout
        delay = 0.005
        loop = asyncio.get_running_loop()
        while True:
            ended: asyncio.Future[None] = loop.create_future()
            waiters = self._waiters.setdefault(execution_id, [])
            waiters.append(ended)  # before reading: an end in between is not missed
            try:
                record = await self.status(execution_id)
                if record.is_terminal:
                    return record
                if give_up is not None and time.monotonic() >= give_up:
                    raise WaitTimedOut(execution_id, timeout or 0.0)
                pause = delay if give_up is None else min(delay, give_up - time.monotonic())
                await asyncio.wait([ended], timeout=max(pause, 0.0))
            finally:
                if ended in waiters:
                    waiters.remove(ended)
                if not waiters:
                    self._waiters.pop(execution_id, None)
            delay = min(delay * 2, 0.25)

    def _run_ended(self, execution_id: str) -> None:
        for ended in self._waiters.get(execution_id, []):
            if not ended.done():
                ended.set_result(None)

    # -- changing ---------------------------------------------------------------------------

    async def cancel(self, execution_id: str) -> bool:
        """Cancel an unfinished execution: True if it was cancelled now, False if it had
        already finished. Unknown ids raise :class:`~zart.ExecutionNotFound`."""
        async with self.engine.begin() as conn:
            cancelled = await executions_repo.cancel_execution(
                conn, execution_id, now=self.clock.now()
            )
            if (
                cancelled is None
                and await executions_repo.get_execution(conn, execution_id) is None
            ):
                raise ExecutionNotFound(execution_id)
        if cancelled is not None:
            for worker in self._workers:
                worker.abort(execution_id)
        return cancelled is not None

    async def offer_event(
        self,
        execution_id: str,
        name: str,
        payload: Any = None,
        *,
        session: AsyncSession | AsyncConnection | None = None,
    ) -> None:
        """Deliver the event ``name`` to an execution; a ``zart.wait_for_event(name)`` there
        returns ``payload`` (JSON, a pydantic model or a dataclass). The event is stored and the
        execution woken in one transaction (the caller's, with ``session=``); an event offered
        before the execution reaches its wait is kept for it.

        Raises :class:`~zart.ExecutionNotFound`, :class:`~zart.EventNotAccepted` (finished or
        cancelled) or :class:`~zart.EventAlreadyDelivered`, storing nothing.
        """
        if not isinstance(name, str) or not name:
            raise InvalidPayload("an event needs a non-empty name")
        data = to_json(payload, name="event payload")
        check_size(data, self.runtime.max_payload_bytes, name="event payload")
        async with _transaction(self.engine, session, self.schema) as conn:
            delivery = await events_repo.deliver_event(
                conn, execution_id=execution_id, name=name, payload=data, now=self.clock.now()
            )
            if delivery.woke:
                await wakeups.notify(conn, self.runtime.channel, delivery.task_name)
        if delivery.woke:
            self._wake_workers(session)

    # -- workers ----------------------------------------------------------------------------

    @property
    def workers(self) -> tuple[Worker, ...]:
        """The workers this scheduler runs in this process (``run_worker`` blocks)."""
        return tuple(self._workers)

    @asynccontextmanager
    async def run_worker(
        self,
        concurrency: int = 64,
        lease_timeout: float = 30.0,
        *,
        task_names: list[str] | None = None,
        poll_interval: float = 0.5,
        heartbeat_interval: float | None = None,
        shutdown_timeout: float = 30.0,
    ) -> AsyncIterator[Worker]:
        """Run a worker in this process while the block runs (apps, tests, scripts).

        It runs every durable handler registered in this process, or ``task_names``.
        """
        settings = WorkerSettings(
            concurrency=concurrency,
            lease_timeout=lease_timeout,
            heartbeat_interval=heartbeat_interval,
            poll_interval=poll_interval,
            shutdown_timeout=shutdown_timeout,
        )
        worker = Worker(
            self.runtime, task_names or registered_names(), settings, on_finished=self._run_ended
        )
        await worker.start()
        self._workers.append(worker)
        try:
            yield worker
        finally:
            self._workers.remove(worker)
            await worker.stop()

    # -- admin operations -------------------------------------------------------------------
    # Retry a failed step, restart, selective rerun, pause rules. See docs/admin.md.

    async def retry_step(
        self, execution_id: str, step_name: str, triggered_by: str | None = None
    ) -> RetriedStep:
        """Run the failed step ``step_name`` of a failed execution's current run once more.

        No new run: the step's failure is set aside (its attempts stay in the history) and the
        execution becomes claimable; the replay returns every other stored outcome and runs
        this step again, continuing its attempt numbering. Raises
        :class:`~zart.ExecutionNotFound`, :class:`~zart.StepNotFound`, or
        :class:`~zart.InvalidExecutionState` when the execution or the step has not failed.
        """
        async with self.engine.begin() as conn:
            execution = await self._locked(conn, execution_id)
            step = (await steps_repo.load_run_outcomes(conn, execution.run_id)).get(step_name)
            if step is None:
                raise StepNotFound(execution_id, step_name)
            if step.kind is not StepKind.STEP or step.status is not StepStatus.FAILED:
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
            retried = await admin_repo.retry_failed_step(
                conn,
                execution,
                step,
                deadline_at=self._fresh_deadline(execution),
                now=self.clock.now(),
            )
            await wakeups.notify(conn, self.runtime.channel, execution.task_name)
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
        async with self.engine.begin() as conn:
            execution = await self._locked(conn, execution_id)
            stored = (
                execution.payload if payload is None else self._restart_payload(execution, payload)
            )
            run = await admin_repo.start_new_run(
                conn,
                execution,
                trigger=RunTrigger.RESTART,
                payload=stored,
                triggered_by=triggered_by,
                preserved=(),
                deadline_at=self._fresh_deadline(execution),
                now=self.clock.now(),
            )
            await wakeups.notify(conn, self.runtime.channel, execution.task_name)
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
        other step again. Steps that did not complete (failed, waiting) are always rerun, and
        a step named in both lists is refused. Raises :class:`~zart.ExecutionNotFound` or
        :class:`~zart.InvalidPayload` for a name the current run does not have.
        """
        rerun, preserve = set(rerun_steps), set(preserve_steps)
        if both := sorted(rerun & preserve):
            raise InvalidPayload(f"steps named both to rerun and to preserve: {', '.join(both)}")
        async with self.engine.begin() as conn:
            execution = await self._locked(conn, execution_id)
            steps = await steps_repo.list_steps(conn, execution.run_id)
            if unknown := sorted((rerun | preserve) - {s.name for s in steps}):
                raise InvalidPayload(
                    f"execution {execution_id!r} has no step {', '.join(map(repr, unknown))}"
                    " in its current run"
                )
            kept = [s for s in steps if s.name in preserve and _preservable(s)]
            run = await admin_repo.start_new_run(
                conn,
                execution,
                trigger=RunTrigger.SELECTIVE_RERUN,
                payload=execution.payload,
                triggered_by=triggered_by,
                preserved=kept,
                deadline_at=self._fresh_deadline(execution),
                now=self.clock.now(),
            )
            await wakeups.notify(conn, self.runtime.channel, execution.task_name)
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
        async with self.engine.begin() as conn:
            rule = await pause_rules_repo.create_rule(
                conn,
                rule_id=str(uuid.uuid4()),
                execution_id=execution_id,
                task_name=task_name,
                step_pattern=step_pattern,
                reason=reason,
                triggered_by=triggered_by,
                expires_at=expires_at,
                now=now,
            )
            await wakeups.notify(conn, self.runtime.channel, wakeups.PAUSE_RULES_CHANGED)
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
        async with self._reads.connect() as conn:
            return await pause_rules_repo.list_rules(
                conn, now=self.clock.now(), include_inactive=include_inactive
            )

    async def remove_pause_rule(
        self, rule_id: str, triggered_by: str | None = None
    ) -> PauseRuleRecord:
        """Remove (soft-delete) an active pause rule and wake the executions it held. Raises
        :class:`~zart.PauseRuleNotFound` when no active rule has this id."""
        now = self.clock.now()
        async with self.engine.begin() as conn:
            rule = await pause_rules_repo.remove_rule(
                conn, rule_id, now=now, removed_by=triggered_by
            )
            if rule is None:
                raise PauseRuleNotFound(rule_id)
            await pause_rules_repo.release_holds(conn, rule_id, now=now)
            await wakeups.notify(conn, self.runtime.channel, wakeups.PAUSE_RULES_CHANGED)
        rules = self.runtime.pause_rules
        rules.replace(r for r in rules.rules if r.rule_id != rule_id)
        rules.mark_stale()
        for worker in self._workers:
            worker.wake()
        log("pause_rule_removed", "pause rule removed", rule_id=rule_id, triggered_by=triggered_by)
        return rule

    async def _locked(self, conn: AsyncConnection, execution_id: str) -> ExecutionRecord:
        execution = await admin_repo.lock_execution_record(conn, execution_id)
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

    # -- schedules --------------------------------------------------------------------------

    async def add_schedule(
        self,
        name: str,
        task: Target,
        cron: str,
        *,
        timezone: str = "UTC",
        payload: Any = None,
        overlap: OverlapPolicy | str = DEFAULT_OVERLAP,
        catchup: CatchupPolicy | str = DEFAULT_CATCHUP,
    ) -> ScheduleRecord:
        """Start ``task`` (a durable handler or its task name) on the cron schedule ``cron``
        (5 fields, or 6 with seconds first) read in ``timezone``, each execution with
        ``payload``; stored under ``name`` and fired by every running worker, exactly once per
        fire time.

        Adding an existing name updates it in place (idempotent, so an application may call
        it at every start): a paused schedule stays paused, and an unchanged rule keeps its
        next fire time. Raises :class:`~zart.InvalidSchedule` (expression, time zone, policy,
        name), :class:`~zart.UnknownTask` or :class:`~zart.InvalidPayload`, storing nothing.
        """
        name = check_name(name)
        spec = ScheduleSpec.create(cron, timezone=timezone, overlap=overlap, catchup=catchup)
        request = await _start_request(
            task,
            payload,
            None,
            max_payload_bytes=self.runtime.max_payload_bytes,
            live_task_names=self._live_task_names,
        )
        task_name, stored = request.task_name, request.payload
        now = self.clock.now()
        async with self.engine.begin() as conn:
            return await schedules_repo.save_schedule(
                conn,
                name=name,
                task_name=task_name,
                cron=spec.cron.expression,
                timezone=spec.cron.timezone,
                payload=stored,
                overlap=spec.overlap,
                catchup=spec.catchup,
                next_fire_at=spec.cron.next_after(now),
                now=now,
            )

    async def get_schedule(self, name: str) -> ScheduleRecord:
        """The schedule ``name``; :class:`~zart.ScheduleNotFound` when there is none."""
        async with self._reads.connect() as conn:
            record = await schedules_repo.get_schedule(conn, name)
        if record is None:
            raise ScheduleNotFound(name)
        return record

    async def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule (declared on handlers and added at run time), by name."""
        async with self._reads.connect() as conn:
            return await schedules_repo.list_schedules(conn)

    async def pause_schedule(self, name: str) -> ScheduleRecord:
        """Stop firing ``name`` until :meth:`resume_schedule` (running executions go on).
        Idempotent; :class:`~zart.ScheduleNotFound` when there is no such schedule."""
        async with self.engine.begin() as conn:
            record = await schedules_repo.pause_schedule(conn, name, now=self.clock.now())
        if record is None:
            raise ScheduleNotFound(name)
        return record

    async def resume_schedule(self, name: str) -> ScheduleRecord:
        """Fire ``name`` again, from its next fire time after now: times that passed while
        it was paused are not caught up. Idempotent; :class:`~zart.ScheduleNotFound`."""
        now = self.clock.now()
        async with self.engine.begin() as conn:
            current = await schedules_repo.get_schedule(conn, name, lock=True)
            if current is None:
                raise ScheduleNotFound(name)
            following = parse_cron(current.cron, current.timezone).next_after(now)
            record = await schedules_repo.resume_schedule(
                conn, name, next_fire_at=following, now=now
            )
        assert record is not None  # the row is locked (or SQLite's writer lock is held)
        return record

    async def remove_schedule(self, name: str) -> None:
        """Delete ``name`` and its firing history; the executions it started are kept. A
        schedule declared on a handler comes back when a worker running it starts: remove
        ``schedule=`` from the decorator too. :class:`~zart.ScheduleNotFound` when unknown."""
        async with self.engine.begin() as conn:
            removed = await schedules_repo.remove_schedule(conn, name)
        if not removed:
            raise ScheduleNotFound(name)


@asynccontextmanager
async def _transaction(
    engine: AsyncEngine, session: AsyncSession | AsyncConnection | None, schema: str | None
) -> AsyncIterator[AsyncConnection]:
    """The caller's transaction when a session is given (never committed here), else a
    transaction of our own committed on exit.

    In the caller's transaction Zart's tables are put in ``schema`` for our statements only
    (``in_schema``), and on PostgreSQL our statements run under a savepoint: an error rolls
    back what we wrote and nothing else, and the caller's transaction stays usable. (SQLite
    undoes a failed statement by itself, and a savepoint there would commit the caller's work
    early with drivers that begin transactions lazily.)
    """
    if session is None:
        async with engine.begin() as conn:
            yield conn
        return
    if isinstance(session, AsyncSession):
        conn = await session.connection()
    elif isinstance(session, AsyncConnection):
        conn = session
    else:
        raise ConfigurationError(
            f"session= takes an AsyncSession or AsyncConnection, not {type(session).__name__}"
        )
    with in_schema(_sync_connection(conn), schema):
        if conn.dialect.name == "postgresql":
            async with conn.begin_nested():
                yield conn
        else:
            yield conn


def _sync_connection(conn: AsyncConnection) -> Connection:
    if conn.sync_connection is None:
        raise ConfigurationError("session= got a connection that is not open")
    return conn.sync_connection


def _sync_target(session: AsyncSession | AsyncConnection) -> Session | Connection:
    if isinstance(session, AsyncSession):
        return session.sync_session
    return _sync_connection(session)


# ---------------------------------------------------------------------------------------------
# Starting an execution: one path for start() and enqueue()


@dataclass(frozen=True, slots=True)
class _StartRequest:
    task_name: str
    payload: Any
    execution_id: str
    timeout: timedelta | None


async def _start_request(
    handler: Target,
    payload: Any,
    execution_id: str | None,
    *,
    max_payload_bytes: int,
    live_task_names: Callable[[], Awaitable[set[str]]],
) -> _StartRequest:
    """Check what to start before anything is written: the handler (or a task name some live
    worker runs), the payload against the handler's input model, its size, the id."""
    if isinstance(handler, DurableHandler):
        target: DurableHandler[..., Any] | None = handler
        task_name = handler.name
    elif isinstance(handler, str):
        task_name = handler
        target = find_handler(task_name)
        if target is None and task_name not in await live_task_names():
            raise UnknownTask(task_name)
    else:
        raise ConfigurationError(
            f"start() takes a durable handler or a task name, not {type(handler).__name__}"
        )
    # Started by name for a handler only a remote worker knows: the worker validates it.
    stored = to_json(payload, name="payload") if target is None else target.payload_from(payload)
    check_size(stored, max_payload_bytes, name="payload")
    if execution_id is not None and (not isinstance(execution_id, str) or not execution_id):
        raise InvalidPayload("execution_id must be a non-empty string")
    return _StartRequest(
        task_name=task_name,
        payload=stored,
        execution_id=execution_id or str(uuid.uuid4()),
        timeout=None if target is None else target.timeout,
    )


async def _create(
    conn: AsyncConnection, request: _StartRequest, *, now: datetime, channel: str
) -> CreatedExecution:
    """Insert the execution (idempotently) and queue its wake-up, in ``conn``'s transaction."""
    created = await executions_repo.create_execution(
        conn,
        execution_id=request.execution_id,
        task_name=request.task_name,
        payload=request.payload,
        now=now,
        deadline_at=None if request.timeout is None else now + request.timeout,
    )
    if created.created:  # sent at commit: the caller's, with session=
        await wakeups.notify(conn, channel, request.task_name)
    return created


def enqueue(
    session: Session | Connection,
    handler: Target,
    payload: Any = None,
    *,
    execution_id: str | None = None,
    schema: str | None = None,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
) -> str:
    """Start an execution from synchronous code (Flask, scripts) inside the caller's
    SQLAlchemy ``Session`` or ``Connection`` transaction; return its id.

    ``await scheduler.start(handler, payload, session=...)`` for an application without an
    event loop: the execution row (and, on PostgreSQL, the NOTIFY that wakes workers) is
    written in the caller's transaction and never committed here; roll back and nothing
    starts. It only enqueues: workers run elsewhere (``zart worker``); on SQLite they find it
    at their next poll. ``schema`` must be the workers' ``schema=``. Idempotent by
    ``execution_id`` exactly like ``start``; bad input raises before anything is written.
    """
    if isinstance(session, Session):
        connection = session.connection()
    elif isinstance(session, Connection):
        connection = session
    else:
        raise ConfigurationError(
            f"enqueue() takes a Session or Connection, not {type(session).__name__}"
            " (async code: use DurableScheduler.start(..., session=...))"
        )
    # The repository coroutines, run over the caller's synchronous connection.
    bridge = cast(AsyncConnection, _SyncBridge(connection))

    async def live_task_names() -> set[str]:
        seen_since = SYSTEM_CLOCK.now() - LIVE_WORKER_WINDOW
        return await workers_repo.live_task_names(bridge, seen_since=seen_since)

    async def start() -> CreatedExecution:
        with in_schema(connection, schema):
            request = await _start_request(
                handler,
                payload,
                execution_id,
                max_payload_bytes=max_payload_bytes,
                live_task_names=live_task_names,
            )
            savepoint: AbstractContextManager[Any] = (
                connection.begin_nested()
                if connection.dialect.name == "postgresql"
                else nullcontext()
            )
            with savepoint:
                return await _create(
                    bridge, request, now=SYSTEM_CLOCK.now(), channel=wakeups.channel_for(schema)
                )

    return _run_to_completion(start()).execution.execution_id


class _SyncBridge:
    """A synchronous ``Connection`` in the shape the repository functions use (``execute``,
    ``scalar``, ``dialect``). Its coroutines finish without ever suspending, so
    :func:`_run_to_completion` runs them without an event loop: one repository for both
    worlds, no hand-kept synchronous twin."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self.dialect = connection.dialect

    async def execute(self, statement: Any, parameters: Any = None, **options: Any) -> Any:
        return self._connection.execute(statement, parameters, **options)

    async def scalar(self, statement: Any, parameters: Any = None, **options: Any) -> Any:
        return self._connection.scalar(statement, parameters, **options)


def _run_to_completion(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        coroutine.send(None)
    except StopIteration as finished:
        return cast(T, finished.value)
    coroutine.close()
    raise RuntimeError("enqueue() met a coroutine that waits for I/O; this is a bug in Zart")


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
