"""When the claim loop asks for a takeover: a ``running`` execution whose lease expired (its
worker died or lost the lease mid-run), claimed apart from the ready ones.

Two rules, both about a dead worker's executions:

- **Taken-over work first.** Each claim asks for one takeover before it takes ready
  executions, so work already in progress never queues behind a backlog of starts that sort
  before its lease expiry. A claim that found none asks again only a poll interval later (the
  takeover claim reads a small index, but it is one more statement); one that found one asks
  again at the next claim.
- **Executions that died together are resumed apart.** One of them may be what killed the
  worker. A taken-over execution is on probation until it ends or runs for a heartbeat
  interval; meanwhile this worker takes over no other. So a poison execution dies again
  alone, beside fresh work only, and every execution it took down is resumed without it, one
  after the other on each worker (its crash count grows only when it dies in its own run).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from zart.models import ExecutionStatus
from zart.repositories.records import ClaimedExecution

#: Takeovers a claim asks for at most: one, for the probation above.
TAKEOVERS_PER_CLAIM = 1


class Takeovers:
    """The claim loop's takeover policy (see the module's docstring)."""

    def __init__(self, *, poll_interval: float, probation: float) -> None:
        self._poll = timedelta(seconds=poll_interval)
        self._probation = timedelta(seconds=probation)
        #: The taken-over execution on probation, and when its probation ends.
        self._suspect: str | None = None
        self._suspect_until: datetime | None = None
        #: No takeover asked for before this (``None``: at the next claim).
        self._next_look: datetime | None = None

    def wanted(self, now: datetime) -> int:
        """How many takeovers the claim at ``now`` asks for."""
        if self._suspect is not None:
            if self._suspect_until is not None and now < self._suspect_until:
                return 0
            self._suspect = None  # survived its probation
        if self._next_look is not None and now < self._next_look:
            return 0
        return TAKEOVERS_PER_CLAIM

    def claimed(self, asked: int, claimed: Sequence[ClaimedExecution], now: datetime) -> None:
        """The claim at ``now`` that asked for ``asked`` takeovers took ``claimed``."""
        if not asked:
            return
        taken = [c for c in claimed if c.previous_status is ExecutionStatus.RUNNING]
        if taken:
            self._suspect = taken[-1].execution.execution_id
            self._suspect_until = now + self._probation
            self._next_look = None  # there may be more: ask once this one is cleared
        else:
            self._next_look = now + self._poll

    def ended(self, execution_id: str) -> bool:
        """An execution's run ended on this worker; True if it was on probation (the claim
        loop may take over the next one now)."""
        if execution_id != self._suspect:
            return False
        self._suspect = None
        return True
