"""Every code block of docs/fastapi.md runs: each Python block is a verbatim excerpt of a file
that the suite runs (examples/fastapi_app, its own tests, the application alembic env of
tests/migration), and each shell command is run here, or is checked against what it names."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "fastapi.md"
EXAMPLE = ROOT / "examples" / "fastapi_app"
#: The files the page may quote; each is run by tests/acceptance/test_fastapi_example.py
#: (the example, its suite) or tests/migration/test_app_alembic.py (the alembic env).
QUOTED = [
    *sorted(EXAMPLE.glob("*.py")),
    *sorted((EXAMPLE / "tests").glob("*.py")),
    ROOT / "tests" / "migration" / "app_alembic" / "env.py",
]
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(PAGE.read_text()) if lang == language]


def significant(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def quoted_from(block: str) -> Path | None:
    wanted = significant(block)
    for path in QUOTED:
        lines = significant(path.read_text())
        for start in range(len(lines) - len(wanted) + 1):
            if lines[start : start + len(wanted)] == wanted:
                return path
    return None


def test_the_page_has_code() -> None:
    assert len(blocks("python")) >= 8
    assert len(blocks("sh")) >= 4


@pytest.mark.parametrize("number", range(len(blocks("python"))))
def test_every_python_block_is_quoted_from_code_the_suite_runs(number: int) -> None:
    block = blocks("python")[number]

    assert quoted_from(block) is not None, f"not an excerpt of {QUOTED}:\n{block}"


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZART_", "APP_"))}
    return {**env, **extra}


def install_line_names_this_distribution(command: str, _tmp: Path) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = re.fullmatch(r"pip install '([\w-]+)\[([\w,]+)\]'", command)
    assert found is not None, command
    assert found[1] == project["name"] == "zart-durable"  # `zart` on the index is another one
    assert set(found[2].split(",")) <= set(project["optional-dependencies"])


def worker_app_is_what_the_example_test_runs(command: str, _tmp: Path) -> None:
    test = (ROOT / "tests" / "acceptance" / "test_fastapi_example.py").read_text()
    _, _, *arguments = command.split()
    assert ", ".join(f'"{a}"' for a in arguments) in test  # run for real, SIGTERM included


def uvicorn_serves_the_factory(command: str, tmp: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", *command.split(), "--port", "0", "--app-dir", str(ROOT)],
        cwd=tmp,
        env=environment(APP_DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'app.db'}"),
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stderr is not None
    try:
        seen: list[str] = []
        while not seen or ("Application startup complete" not in seen[-1] and seen[-1]):
            seen.append(server.stderr.readline())  # "" once it exited
        assert "Application startup complete" in seen[-1], seen
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
        server.stderr.close()
    assert (tmp / "app.db").exists()  # the lifespan ran on APP_DATABASE_URL


def the_examples_suite_passes(command: str, _tmp: Path) -> None:
    directory, _, test_command = command.partition(" && ")
    assert directory == "cd examples/fastapi_app"
    result = subprocess.run(
        [sys.executable, *test_command.split()[1:], "-q", "-p", "no:cacheprovider"],
        cwd=ROOT / directory.split()[1],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


CHECKS: dict[str, Callable[[str, Path], None]] = {
    "pip install": install_line_names_this_distribution,
    "zart worker --app": worker_app_is_what_the_example_test_runs,
    "uvicorn": uvicorn_serves_the_factory,
    "cd examples/fastapi_app": the_examples_suite_passes,
}

COMMANDS = [line for block in blocks("sh") for line in significant(block)]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_shell_command_runs(command: str, tmp_path: Path) -> None:
    checks = [check for prefix, check in CHECKS.items() if command.startswith(prefix)]
    assert len(checks) == 1, f"no check for {command!r}: add one here"

    checks[0](command, tmp_path)
