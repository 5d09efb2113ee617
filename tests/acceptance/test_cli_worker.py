"""``zart worker`` through its entry point: the error cases (the crash-recovery test drives a
working worker, SIGTERM included)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def zart(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    return subprocess.run(
        [sys.executable, "-m", "zart", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("module", "message"),
    [
        ("no_such_module_anywhere", "cannot import module 'no_such_module_anywhere'"),
        ("json", "no durable handler is registered by json"),
    ],
)
def test_a_worker_without_handlers_is_one_error_line(module: str, message: str) -> None:
    result = zart("worker", module, "--database-url", "sqlite+aiosqlite:///unused.db")

    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {message}")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_worker_needs_at_least_one_module() -> None:
    result = zart("worker")

    assert result.returncode != 0
    assert "MODULES" in result.stderr.upper()


def test_a_worker_on_an_unreachable_database_is_one_error_line(tmp_path: Path) -> None:
    result = zart(
        "worker",
        "tests.acceptance.crash_flow",
        "--database-url",
        "postgresql+asyncpg://postgres@127.0.0.1:1/none",
    )

    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot connect to postgresql+asyncpg://")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("option", ["--claim-ahead", "--claim-ahead-limit"])
def test_a_negative_claim_ahead_is_refused_before_anything_runs(option: str) -> None:
    result = zart(
        "worker",
        "tests.acceptance.crash_flow",
        option,
        "-1",
        "--database-url",
        "postgresql+asyncpg://postgres@127.0.0.1:1/none",  # never reached
    )

    assert result.returncode == 2
    assert option in result.stderr
    assert "cannot connect" not in result.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--app", "examples.fastapi_app.durable"], "--app takes MODULE:ATTR"),
        (["--app", "no_such_app:scheduler"], "cannot import the --app module 'no_such_app'"),
        (
            ["--app", "examples.fastapi_app.durable:nothing"],
            "--app examples.fastapi_app.durable:nothing: module 'examples.fastapi_app.durable'"
            " has no attribute 'nothing'",
        ),
        (
            ["--app", "examples.fastapi_app.durable:scheduler_for"],  # a function needing an arg
            "--app examples.fastapi_app.durable:scheduler_for is a function, not a",
        ),
        (
            ["--app", "examples.fastapi_app.database:DEFAULT_DATABASE_URL"],
            "--app examples.fastapi_app.database:DEFAULT_DATABASE_URL is a str, not a"
            " zart.DurableScheduler",
        ),
        (
            [
                "--app",
                "examples.fastapi_app.durable:scheduler",
                "--database-url",
                "sqlite+aiosqlite:///other.db",
            ],
            "--app and --database-url: the application's scheduler names its database itself",
        ),
    ],
)
@pytest.mark.parametrize("command", ["worker", "serve"])
def test_a_bad_app_is_one_error_line(command: str, arguments: list[str], message: str) -> None:
    result = zart(command, *arguments)

    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {message}"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("command", ["worker", "serve"])
@pytest.mark.parametrize(
    ("source", "raised"),
    [
        ('raise RuntimeError("no APP_SECRET")\n', "RuntimeError: no APP_SECRET"),
        ("def broken(:\n", "SyntaxError: invalid syntax"),
        ("import a_dependency_not_installed\n", "No module named 'a_dependency_not_installed'"),
    ],
)
def test_an_app_module_whose_import_fails_is_named_in_one_error_line(
    command: str, source: str, raised: str, tmp_path: Path
) -> None:
    (tmp_path / "failing_app.py").write_text(source)

    result = zart(command, "--app", "failing_app:scheduler", cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot import the --app module 'failing_app': ")
    assert raised in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_an_app_attribute_that_is_an_engine_is_named_as_such() -> None:
    result = zart("worker", "--app", "examples.fastapi_app.durable:scheduler.engine")

    assert result.returncode == 1
    assert result.stderr == (
        "error: --app examples.fastapi_app.durable:scheduler.engine is an AsyncEngine,"
        " not a zart.DurableScheduler\n"
    )


def test_an_app_whose_settings_do_not_fit_is_one_error_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    result = subprocess.run(
        [sys.executable, "-m", "zart", "worker", "--app", "examples.fastapi_app.durable:scheduler"],
        cwd=ROOT,
        env={**env, "ZART_CONCURRENCY": "none"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert result.stderr.startswith(
        "error: --app examples.fastapi_app.durable:scheduler: invalid Zart settings:"
        " concurrency (ZART_CONCURRENCY)"
    ), result.stderr


@pytest.mark.parametrize("how", ["modules", "app"])
def test_a_worker_on_a_database_without_zarts_tables_is_one_error_line(
    empty_database_url: str, how: str
) -> None:
    if empty_database_url.startswith("sqlite"):  # a file, with no table in it
        Path(empty_database_url.removeprefix("sqlite+aiosqlite:///")).touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZART_", "APP_"))}
    if how == "modules":
        arguments = ["tests.acceptance.crash_flow", "--database-url", empty_database_url]
    else:  # the example app's engine reads APP_DATABASE_URL
        arguments = ["--app", "examples.fastapi_app.durable:scheduler"]
        env["APP_DATABASE_URL"] = empty_database_url
    result = subprocess.run(
        [sys.executable, "-m", "zart", "worker", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert result.stderr.startswith("error: Zart's tables are missing from "), result.stderr
    assert "`zart db upgrade` or `await scheduler.migrate()`" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
