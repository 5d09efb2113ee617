"""Typed handles, checked by mypy itself: ``start`` takes the handler's input type, ``wait``
(and ``run_to_completion``, and the sync facade's ``wait``) return its result type.

The samples live in ``tests/typing/``: ``typed_handles.py`` must type-check, and the two
others must fail, each at the line named, with mypy's exit status 1."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "typing"

# One process runs them (pytest-xdist): mypy runs in the test process, on one cache directory.
pytestmark = pytest.mark.xdist_group("mypy")


def mypy(*names: str) -> tuple[int, list[str]]:
    """mypy --strict (the project's configuration) on these samples: its exit status and its
    error lines, with paths from the samples' folder on ("wrong_input.py:10: error: ...")."""
    out, err, status = api.run(
        [
            "--strict",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            # Files, not mypy's SQLite cache: its database was found locked by the run before
            # in this process ("database is locked" setting its journal mode), now and then.
            "--no-sqlite-cache",
            *(str(SAMPLES / name) for name in names),
        ]
    )
    assert not err, err
    errors = [
        line.rpartition("typing/")[2]
        for line in out.splitlines()
        if re.search(r":\d+: error:", line)
    ]
    return status, errors


def test_a_typed_start_and_wait_type_check() -> None:
    assert mypy("typed_handles.py") == (0, [])


def test_a_payload_that_is_not_the_handlers_input_fails_to_type_check() -> None:
    assert mypy("wrong_input.py") == (
        1,
        [
            'wrong_input.py:10: error: Argument 1 to "start" of "DurableScheduler" has'
            ' incompatible type "DurableHandler[[OrderInput], Receipt]"; expected'
            ' "DurableHandler[[Receipt], Receipt]"  [arg-type]'
        ],
    )


def test_a_misused_result_fails_to_type_check() -> None:
    assert mypy("misused_result.py") == (
        1,
        [
            'misused_result.py:12: error: "Receipt" has no attribute "upper"  [attr-defined]',
            "misused_result.py:13: error: Incompatible types in assignment (expression has type"
            ' "Receipt", variable has type "str")  [assignment]',
        ],
    )
