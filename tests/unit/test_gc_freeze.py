"""``freeze_startup_objects``: what a worker process calls once it has started."""

from __future__ import annotations

import gc
import weakref

from zart.worker import freeze_startup_objects


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_it_collects_garbage_first_then_freezes_what_is_left() -> None:
    garbage = _Node()
    gone = weakref.ref(garbage)
    del garbage
    kept = _Node()
    try:
        frozen = freeze_startup_objects()
        assert gone() is None  # collected, not frozen for the life of the process
        assert frozen == gc.get_freeze_count() > 0
        assert not any(obj is kept for obj in gc.get_objects())  # out of the collector's reach
    finally:
        gc.unfreeze()
    assert any(obj is kept for obj in gc.get_objects())
