"""The replay check of a deploy: stored histories replayed against the current code, with
every step, sleep, wait and capture answered from the history (``zart replay``,
``zart.testing.replay``; ``docs/versioning.md``).

Each execution's current run is replayed in a replay-only pass (:class:`RunState` with
``replay_only``): a step whose outcome is recorded returns it (or raises its stored failure);
the first one that is not (the edge of the history of an execution in flight) ends the pass
before it runs (:class:`~zart.runtime.run.ReplayFrontier`). No step body runs and nothing is
written: the only statements are two reads (the executions, then every outcome of their runs
in one query). A pass that leaves the history, ends before reaching all of it, or raises
where the execution completed, is a divergence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from zart.errors import NonDeterministicReplay
from zart.models import ExecutionStatus
from zart.repositories import executions as executions_repo
from zart.repositories import steps as steps_repo
from zart.repositories.records import ExecutionRecord, Lease, StepRecord
from zart.repositories.store import Store
from zart.runtime.registry import DurableHandler, find_handler, registered_names
from zart.runtime.run import ReplayFrontier, RunState, current_run
from zart.runtime.runtime import Runtime, Suspended

FAILED = ExecutionStatus.FAILED
#: The executions of each task replayed when no limit is given: the most recent ones.
DEFAULT_LIMIT = 100


@dataclass(frozen=True, slots=True)
class ReplayVerdict:
    """How one stored execution replayed against the current code."""

    execution_id: str
    task_name: str
    status: ExecutionStatus
    #: The divergence (None: the code follows the history).
    divergence: str | None = None
    #: The recorded step where the code left the history, and its recorded position.
    step: str | None = None
    position: int | None = None

    @property
    def diverged(self) -> bool:
        return self.divergence is not None


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """Every execution replayed, most recent first per task."""

    verdicts: tuple[ReplayVerdict, ...]

    @property
    def divergences(self) -> tuple[ReplayVerdict, ...]:
        return tuple(v for v in self.verdicts if v.diverged)

    @property
    def ok(self) -> bool:
        return not self.divergences


async def replay_histories(
    runtime: Runtime,
    store: Store,
    *,
    task_names: Sequence[str] | None = None,
    limit: int = DEFAULT_LIMIT,
) -> ReplayReport:
    """Replay the ``limit`` most recent executions of each task (``task_names``, default
    every task registered in this process) against the handlers registered here, read
    through ``store`` (the control plane's)."""
    names = list(registered_names() if task_names is None else task_names)
    verdicts: list[ReplayVerdict] = []
    for name in names:
        handler = find_handler(name)
        if handler is None:
            continue
        async with store.reading() as db:
            found = await db.run(
                executions_repo.list_executions,
                executions_repo.ExecutionFilter(task_name=name),
                limit=limit,
            )
            outcomes = await db.run(
                steps_repo.load_outcomes_of_runs, [e.run_id for e in found.items]
            )
        for execution in found.items:
            replaying = asyncio.create_task(  # its own task: the replay's root branch
                _replay(runtime, handler, execution, outcomes[execution.run_id]),
                name=f"zart-replay-{execution.execution_id}",
            )
            verdicts.append(await replaying)
    return ReplayReport(tuple(verdicts))


async def _replay(
    runtime: Runtime,
    handler: DurableHandler[..., Any],
    execution: ExecutionRecord,
    outcomes: dict[str, StepRecord],
) -> ReplayVerdict:
    lease = Lease(execution.execution_id, "zart-replay", "zart-replay", execution.updated_at)
    state = RunState(runtime, lease, execution, dict(outcomes), replay_only=True)
    token = current_run.set(state)
    raised: BaseException | None = None
    ended = True  # the pass reached the handler's end (not the edge of the history)
    try:
        await handler.call_with(handler.input_from(execution.payload))
    except (ReplayFrontier, Suspended):
        ended = False
    except BaseExceptionGroup as group:
        _, rest = group.split((ReplayFrontier, Suspended))
        ended = rest is None
        raised = rest
    except Exception as exc:
        raised = exc
    finally:
        current_run.reset(token)
    error = state.diverged
    if error is None and ended:
        error = _ended_differently(state, handler, execution, raised)
    if error is None:
        return ReplayVerdict(execution.execution_id, execution.task_name, execution.status)
    return ReplayVerdict(
        execution.execution_id,
        execution.task_name,
        execution.status,
        divergence=str(error),
        step=error.step,
        position=error.position,
    )


def _ended_differently(
    state: RunState,
    handler: DurableHandler[..., Any],
    execution: ExecutionRecord,
    raised: BaseException | None,
) -> NonDeterministicReplay | None:
    """A pass that reached the handler's end: recorded steps it never reached, or an error
    where the execution completed, are divergences. (A failed execution's ``on_failure`` is
    not replayed: its steps are not checked.)"""
    if handler.on_failure is not None and (raised is not None or execution.status is FAILED):
        return None  # on_failure would run here: its steps are not replayed
    if raised is not None and execution.status is not FAILED:
        return NonDeterministicReplay(
            f"the execution is {execution.status.value}, but its replay now raises"
            f" {type(raised).__name__}: {raised}"
        )
    return state.path.unreached()


__all__ = ["DEFAULT_LIMIT", "ReplayReport", "ReplayVerdict", "replay_histories"]
