"""Patches: ``await zart.patched("change-id")`` branches old runs from new ones across a
deploy (``docs/versioning.md``).

The first pass that reaches a patch point *at the edge of its history* (nothing recorded
ahead of it in its branch) takes the new path: ``True``, and a marker (a capture named
``zart:patch:<id>``, result ``true``) is recorded, so every later replay of that run answers
``True`` again. A pass that meets the point while replaying older history (recorded steps
still ahead in its branch) is a run recorded before the patch existed: ``False``, nothing
recorded, and the old path is taken. Markers are not part of the step path
(:mod:`zart.runtime.paths`): adding a patch point is not a change, and neither is removing one
once no old run remains (:func:`deprecate_patch`).
"""

from __future__ import annotations

from zart.errors import ConfigurationError, OutsideExecution
from zart.models import StepKind, StepStatus
from zart.models.names import check_name
from zart.runtime.paths import PATCH_PREFIX
from zart.runtime.run import ReplayFrontier, current_run, current_step

#: Longest change id: the marker's name (prefix included) fits a step name.
MAX_PATCH_ID = 255 - len(PATCH_PREFIX)


async def patched(change_id: str) -> bool:
    """Whether this run takes the new path of change ``change_id``: ``True`` for a run that
    reaches the call for the first time in code that has it (recorded in its history),
    ``False`` when replaying a run recorded before the patch. Awaited in a handler only."""
    check_name(change_id, "patch id", max_length=MAX_PATCH_ID)
    run = current_run.get()
    if run is None:
        raise OutsideExecution("zart.patched() is awaited inside a durable handler only")
    if current_step.get() is not None:
        raise ConfigurationError(
            "zart.patched() is awaited in the handler, not inside a step's body"
        )
    name = PATCH_PREFIX + change_id
    answer = run.patches.get(name)
    if answer is not None:
        return answer
    record = run.outcomes.get(name)
    if record is not None:
        answer = True
    elif run.path.replaying(run.used_names):
        answer = False
    elif run.replay_only:  # the edge of the history: a replay check stops here
        raise ReplayFrontier()
    else:
        if run.suspending:
            await run.park()
        position = run.next_position
        run.next_position += 1
        now = run.clock.now()
        async with run.busy():
            await run.checkpoint(
                run.outcome(
                    name,
                    StepKind.CAPTURE,
                    StepStatus.COMPLETED,
                    position,
                    result=True,
                    completed_at=now,
                )
            )
        answer = True
    run.patches[name] = answer
    return answer


def deprecate_patch(change_id: str) -> None:
    """Mark change ``change_id`` as finished: call it where ``if await zart.patched(...)``
    stood, keeping only the new path, once no run recorded before the patch is in flight
    (``zart replay`` tells). Runs that recorded the marker replay unchanged (markers are not
    part of the step path); the call checks the id and records nothing."""
    check_name(change_id, "patch id", max_length=MAX_PATCH_ID)
