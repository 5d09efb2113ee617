"""The step path of a run: where each step sits in the recorded history, and the check that a
replay follows it (safe deploys, ``docs/versioning.md``).

Every step (any kind: step, sleep, event wait, capture) is recorded with its *branch*: ``""``
for the handler's own task, else the name of the first step taken in the task it ran in (a
``gather``/``TaskGroup`` branch; names are unique in a run, so the first step names its
task). Within a branch steps run in code order, so the recorded steps of each branch, in
``position`` order, are the path a replay must follow; across branches the interleaving
depends on timing and is never compared.

A replay takes each name in its task's branch and compares it with the next recorded step of
that branch (already loaded by the claim: no query, a list index and a string comparison per
step). The first mismatch is a :class:`~zart.errors.NonDeterministicReplay` naming the
recorded step, its position and what the code did instead: an inserted or renamed step (the
code runs a name the history does not have where it has another), a removed or reordered one
(the code runs a recorded name out of turn, or finishes with recorded steps unreached), a
step moved into another branch. Past the last recorded step of a branch the run is simply
making progress.

Steps recorded before revision 0016 have no branch (NULL): they are replayed as before (by
name, kind checked), without the path check. Patch markers (:mod:`zart.runtime.patches`) are
not part of the path: adding a ``zart.patched`` call, or removing it later, is not a change.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from zart.errors import NonDeterministicReplay
from zart.models import StepKind
from zart.repositories.records import StepRecord

#: The handler's own task.
ROOT = ""
#: Patch markers are recorded under this prefix (:mod:`zart.runtime.patches`).
PATCH_PREFIX = "zart:patch:"


_current_task = asyncio.current_task


def current_task() -> asyncio.Task[object] | None:
    """The running task (``None`` outside an event loop: a RunState made in a test)."""
    try:
        return _current_task()
    except RuntimeError:
        return None


def branch_label(branch: str | None) -> str:
    if branch is None:
        return "an unknown branch"
    return "the handler's own task" if branch == ROOT else f"the branch started by {branch!r}"


@dataclass(slots=True)
class _Cursor:
    """Where one task is on its branch's recorded path."""

    branch: str | None  # None until the task takes its first step
    index: int = 0
    #: The branch's recorded path (set with ``branch``).
    expected: list[StepRecord] | tuple[()] = ()


class StepPath:
    """The recorded path of one run and the replay's place on it, per task."""

    __slots__ = ("_cursors", "_expected", "_legacy", "_root")

    def __init__(self, recorded: dict[str, StepRecord], root: asyncio.Task[object] | None) -> None:
        self._root = root
        self._cursors: dict[asyncio.Task[object] | None, _Cursor] = {}
        # What the pass starts from (the run's outcomes grow as it checkpoints): the recorded
        # steps of each branch in position order, and the names recorded without a branch.
        self._expected: dict[str, list[StepRecord]] = {}
        self._legacy: frozenset[str] = frozenset()
        if recorded:
            self._expected, self._legacy = _paths(recorded)

    def _cursor(self) -> _Cursor:
        task = _current_task()
        cursor = self._cursors.get(task)
        if cursor is None:
            if task is self._root:
                cursor = _Cursor(ROOT, 0, self._expected.get(ROOT, ()))
            else:
                cursor = _Cursor(None)
            self._cursors[task] = cursor
        return cursor

    def branch(self) -> str | None:
        """The branch of the current task (None before its first step)."""
        return self._cursor().branch

    def enter(self, name: str, kind: StepKind, record: StepRecord | None) -> str:
        """Take ``name`` (of ``kind``, recorded as ``record``) in the current task: its branch.
        Raises :class:`NonDeterministicReplay` at the first point where the code leaves the
        recorded path."""
        cursor = self._cursors.get(_current_task()) or self._cursor()
        branch = cursor.branch
        if branch is None:
            branch = cursor.branch = name
            cursor.expected = self._expected.get(name, ())
        if record is not None and record.branch is None:
            return branch  # recorded before revision 0016: no path to compare with
        expected = cursor.expected
        if cursor.index < len(expected):
            want = expected[cursor.index]
            if want.name != name:
                raise _mismatch(want, branch, name, kind, record)
            cursor.index += 1
            return branch
        if record is not None:  # recorded, but in another branch
            raise NonDeterministicReplay(
                f"{kind.value} {name!r} was recorded in {branch_label(record.branch)} at"
                f" position {record.position}, but the code now runs it in"
                f" {branch_label(branch)}; the handler's code changed under a running execution",
                step=name,
                position=record.position,
            )
        return branch

    def replaying(self, used: set[str]) -> bool:
        """Whether the current task still has recorded steps ahead of it (a patch point met
        then is old history: the run was recorded without the patch)."""
        cursor = self._cursor()
        if cursor.branch is not None and cursor.index < len(self._expected.get(cursor.branch, ())):
            return True
        # A task before its first step, or steps recorded before revision 0016: any recorded
        # step not taken yet in this pass.
        if cursor.branch is None:
            return any(r.name not in used for path in self._expected.values() for r in path)
        return any(name not in used for name in self._legacy)

    def unreached(self) -> NonDeterministicReplay | None:
        """At the end of a pass: the first recorded step the code never reached (a removed
        step), if any."""
        reached: dict[str, int] = {}
        for cursor in self._cursors.values():
            if cursor.branch is not None:
                reached[cursor.branch] = cursor.index
        for branch, expected in self._expected.items():
            index = reached.get(branch, 0)
            if index < len(expected):
                want = expected[index]
                return NonDeterministicReplay(
                    f"the run recorded {want.kind.value} {want.name!r} at position"
                    f" {want.position} in {branch_label(branch)}, but the code now ends"
                    " without reaching it (a step removed?); the handler's code changed under"
                    " a running execution",
                    step=want.name,
                    position=want.position,
                )
        return None


def _paths(recorded: dict[str, StepRecord]) -> tuple[dict[str, list[StepRecord]], frozenset[str]]:
    paths: dict[str, list[StepRecord]] = {}
    legacy: set[str] = set()
    for record in sorted(recorded.values(), key=lambda r: (r.position, r.step_id)):
        if record.name.startswith(PATCH_PREFIX):
            continue
        if record.branch is None:
            legacy.add(record.name)
        else:
            paths.setdefault(record.branch, []).append(record)
    return paths, frozenset(legacy)


def _mismatch(
    want: StepRecord, branch: str, name: str, kind: StepKind, record: StepRecord | None
) -> NonDeterministicReplay:
    if record is not None and record.branch == branch:
        hint = "reordered, or the steps before it removed"
    elif record is not None:
        hint = f"moved here from {branch_label(record.branch)}"
    else:
        hint = "a step inserted or renamed"
    return NonDeterministicReplay(
        f"the run recorded {want.kind.value} {want.name!r} at position {want.position} in"
        f" {branch_label(branch)}, but the code now runs {kind.value} {name!r} there ({hint});"
        " the handler's code changed under a running execution",
        step=want.name,
        position=want.position,
    )
