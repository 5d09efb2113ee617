"""The back-off of the control plane's waits that read again until something changed:
``wait`` for an execution running elsewhere, ``get_published`` and ``read_stream`` where no
notification reaches them (SQLite; PostgreSQL while the listener is down)."""

from __future__ import annotations

#: The first pause between reads, and the longest one it doubles up to (seconds).
FIRST_PAUSE = 0.005
LONGEST_PAUSE = 0.25


class PollBackoff:
    """Pauses of 5 ms doubling to 250 ms; :meth:`reset` when something was found."""

    def __init__(self) -> None:
        self._delay = FIRST_PAUSE

    def next(self) -> float:
        """The pause to take now (the next one is twice as long, up to the longest)."""
        delay = self._delay
        self._delay = min(delay * 2, LONGEST_PAUSE)
        return delay

    def reset(self) -> None:
        self._delay = FIRST_PAUSE
