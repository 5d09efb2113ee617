"""Every example in examples/ runs, as a user would run it, and does what it says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_example(name: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_demo_creates_the_schema_in_sqlite(tmp_path: Path) -> None:
    result = run_example("demo.py", tmp_path)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "demo.db").exists()
    assert "zart_executions" in result.stdout
    assert "zart_step_attempts" in result.stdout
