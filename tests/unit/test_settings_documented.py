"""Every field of ``zart.Settings`` is in the settings table of docs/scheduler.md, with its
environment variable: the page is where a user looks for what can be set."""

from __future__ import annotations

import re
from pathlib import Path

import zart

PAGE = Path(__file__).resolve().parents[2] / "docs" / "scheduler.md"


def _settings_table() -> str:
    text = PAGE.read_text()
    section = text[text.index("\n## Settings\n") :]
    return section[: section.index("\n## ", 1)]


def test_every_setting_and_its_variable_is_documented() -> None:
    table = _settings_table()
    named = set(re.findall(r"`(\w+)`", table))
    for field in zart.Settings.model_fields:
        variable = "ZART_SCHEMA" if field == "database_schema" else f"ZART_{field.upper()}"
        assert field in named, f"{field} is not in the settings table of {PAGE.name}"
        worker_row = field in zart.worker.WorkerSettings.__dataclass_fields__
        assert worker_row or variable in named, f"{variable} is not in the settings table"
