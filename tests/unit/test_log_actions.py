"""The log table of docs/workers.md names every action Zart logs, and nothing else: actions are
an API (STYLE rule 11), so a new one must be documented to pass."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# log("action", ...) or log(\n    "action", ...); an action passed on (outage.failed(...,
# action="a")); and an action chosen first (action = "a" if ...).
LOGGED = re.compile(r'\blog\(\s*"([a-z_]+)"|\baction="([a-z_]+)"')
CHOSEN = re.compile(r"^\s*action = (.*)$", re.MULTILINE)


def logged_actions() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "zart").rglob("*.py"):
        text = path.read_text()
        found.update(name for names in LOGGED.findall(text) for name in names if name)
        for choice in CHOSEN.findall(text):
            found.update(re.findall(r'"([a-z_]+)"', choice))
    return found


def documented_actions() -> set[str]:
    text = (ROOT / "docs" / "workers.md").read_text()
    section = text[text.index("| action | when |") :]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([a-z_]+)`", row.split("|")[1])}


def test_every_logged_action_is_in_the_log_table() -> None:
    actions = logged_actions()

    assert "execution_suspended" in actions  # the scan finds actions written on two lines too
    assert actions - documented_actions() == set()


def test_the_log_table_names_no_action_that_is_never_logged() -> None:
    assert documented_actions() - logged_actions() == set()
