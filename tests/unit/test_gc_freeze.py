"""``freeze_startup_objects``: what a worker process calls once it has started.

Checked in a process of its own: the collection it starts with would otherwise also collect
whatever earlier tests left behind, and freezing is the whole process's state."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import gc
    import weakref

    from zart.worker import freeze_startup_objects


    class Node:
        def __init__(self):
            self.me = self  # a reference cycle: only the cyclic collector frees it


    garbage = Node()
    gone = weakref.ref(garbage)
    del garbage
    kept = Node()
    frozen = freeze_startup_objects()
    print("collected first:", gone() is None)
    print("count returned:", frozen == gc.get_freeze_count() > 0)
    print("kept out of reach:", not any(obj is kept for obj in gc.get_objects()))
    gc.unfreeze()
    print("back after unfreeze:", any(obj is kept for obj in gc.get_objects()))
    """
)


def _lines_of(script: str) -> list[str]:
    """What ``script`` prints, run in a Python process of its own."""
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines()


def test_it_collects_garbage_first_then_freezes_what_is_left() -> None:
    assert _lines_of(SCRIPT) == [
        "collected first: True",
        "count returned: True",
        "kept out of reach: True",
        "back after unfreeze: True",
    ]


THRESHOLDS = textwrap.dedent(
    """
    import gc

    from zart.worker import collect_less_often
    from zart.worker.settings import WORKER_GC_THRESHOLDS

    before = gc.get_threshold()
    print("returned the old ones:", collect_less_often() == before)
    print("set the worker's:", gc.get_threshold() == WORKER_GC_THRESHOLDS)
    print("fewer passes:", all(new >= old for new, old in zip(gc.get_threshold(), before)))
    """
)


def test_collect_less_often_sets_the_workers_thresholds_and_returns_the_old_ones() -> None:
    assert _lines_of(THRESHOLDS) == [
        "returned the old ones: True",
        "set the worker's: True",
        "fewer passes: True",
    ]
