"""Typed handles, checked by mypy itself: ``start`` takes the handler's input type, ``wait``
(and ``run_to_completion``, and the sync facade's ``wait``) return its result type.

The samples live in ``tests/typing/``: ``typed_handles.py`` must type-check, and the two
others must fail, each at the line named (one mypy run for the three)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "typing"


@pytest.fixture(scope="module")
def errors() -> list[str]:
    out, err, _ = api.run(
        [
            "--strict",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            *(
                str(SAMPLES / name)
                for name in ("typed_handles.py", "wrong_input.py", "misused_result.py")
            ),
        ]
    )
    assert not err, err
    # Paths as mypy prints them, from the samples' folder on: "wrong_input.py:10: error: ..."
    return [
        line.rpartition("typing/")[2]
        for line in out.splitlines()
        if re.search(r":\d+: error:", line)
    ]


def test_a_typed_start_and_wait_type_check(errors: list[str]) -> None:
    assert [line for line in errors if "typed_handles.py" in line] == []


def test_a_payload_that_is_not_the_handlers_input_fails_to_type_check(errors: list[str]) -> None:
    assert [line for line in errors if "wrong_input.py" in line] == [
        'wrong_input.py:10: error: Argument 1 to "start" of "DurableScheduler" has'
        ' incompatible type "DurableHandler[[OrderInput], Receipt]"; expected'
        ' "DurableHandler[[Receipt], Receipt]"  [arg-type]'
    ]


def test_a_misused_result_fails_to_type_check(errors: list[str]) -> None:
    assert [line for line in errors if "misused_result.py" in line] == [
        'misused_result.py:12: error: "Receipt" has no attribute "upper"  [attr-defined]'
    ]
