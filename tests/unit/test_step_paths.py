"""The step path (zart.runtime.paths) without a database: which replays follow a recorded
history, per task, and where the first divergence is."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from zart.errors import NonDeterministicReplay
from zart.models import StepKind, StepStatus
from zart.repositories.records import StepRecord
from zart.runtime.paths import ROOT, StepPath, current_task

NOW = datetime(2030, 1, 1, tzinfo=UTC)
STEP = StepKind.STEP


def history(*steps: tuple[str, str | None]) -> dict[str, StepRecord]:
    """Recorded steps (name, branch) in the order they were recorded."""
    return {
        name: StepRecord(
            step_id=i,
            run_id="r",
            execution_id="e",
            name=name,
            kind=STEP,
            status=StepStatus.COMPLETED,
            result=None,
            error=None,
            attempts=1,
            position=i,
            deadline_at=None,
            wake_at=None,
            created_at=NOW,
            updated_at=NOW,
            completed_at=NOW,
            branch=branch,
        )
        for i, (name, branch) in enumerate(steps)
    }


async def replay(recorded: dict[str, StepRecord], root: list[str], *branches: list[str]) -> None:
    """Take ``root``'s names in this task, then each branch's in a task of its own (started
    together, as gather does)."""
    path = StepPath(recorded, current_task())

    def take(name: str) -> None:
        path.enter(name, STEP, recorded.get(name))

    async def branch(names: list[str]) -> None:
        for name in names:
            take(name)
            await asyncio.sleep(0)

    for name in root:
        take(name)
    await asyncio.gather(*(branch(b) for b in branches))
    unreached = path.unreached()
    if unreached is not None:
        raise unreached


PARALLEL = history(("a1", "a1"), ("b1", "b1"), ("b2", "b1"), ("a2", "a1"), ("end", ROOT))


async def test_branches_replayed_in_another_interleaving_follow_the_history() -> None:
    await replay(PARALLEL, ["end"], ["b1", "b2"], ["a1", "a2"])


async def test_past_the_recorded_path_is_progress() -> None:
    await replay(PARALLEL, ["end", "later"], ["b1", "b2", "b3"], ["a1", "a2"], ["c1"])


@pytest.mark.parametrize(
    ("branches", "message"),
    [
        (
            (["b1", "b2"], ["a2", "a1"]),
            "step 'a2' was recorded in the branch started by 'a1' at position 3, but the code"
            " now runs it in the branch started by 'a2'",
        ),
        ((["b1"], ["a1", "a2"]), "recorded step 'b2' at position 2 in the branch started by 'b1'"),
        (
            (["b1", "a2"], ["a1"]),
            "recorded step 'b2' at position 2 in the branch started by 'b1', but the code now"
            r" runs step 'a2' there \(moved here from the branch started by 'a1'\)",
        ),
    ],
    ids=["reordered in a branch", "removed from a branch", "moved to another branch"],
)
async def test_a_change_within_a_branch_is_found(
    branches: tuple[list[str], ...], message: str
) -> None:
    with pytest.raises(NonDeterministicReplay, match=message):
        await replay(PARALLEL, ["end"], *branches)


async def test_steps_recorded_before_branches_existed_are_not_compared() -> None:
    legacy = history(("x", None), ("y", None))
    await replay(legacy, ["y", "x", "z"])


async def test_a_patch_marker_is_not_on_the_path() -> None:
    recorded = history(("zart:patch:p", ROOT), ("s1", ROOT))
    await replay(recorded, ["s1"])
