"""The side-effect journals the worker-process tests read: a file the handlers under test
append a line to per side effect, read while their workers run and once they are done."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path


def journal_lines(journal: Path) -> list[str]:
    """The journal's lines so far (none before its first line is written)."""
    return journal.read_text().splitlines() if journal.exists() else []


async def wait_for_line(
    journal: Path, line: str, within: float = 60, *, prefix: bool = False
) -> None:
    """Until ``line`` is in the journal (with ``prefix``: a line starting with it), at most
    ``within`` seconds."""
    give_up = time.monotonic() + within
    while time.monotonic() < give_up:
        lines = await asyncio.to_thread(journal_lines, journal)
        if any(seen.startswith(line) for seen in lines) if prefix else line in lines:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{line!r} never appeared in the journal")
