"""Every CLI error is one line naming the problem, never a traceback, and never shows a
database password: through the entry point, as an operator types them."""

from __future__ import annotations

import pytest

from tests.acceptance.test_cli_worker import zart

SECRET = "SECRET-pw"


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["status", "x", "--database-url", f"postgresql://u:{SECRET}@h:notaport/db"], 1, "***"),
        (
            [
                "serve",
                "tests.acceptance.cli_handlers",
                "--database-url",
                f"postgres://u:{SECRET}@h:x/d",
            ],
            1,
            "invalid database URL",
        ),
        (["serve", "tests.acceptance.cli_handlers", "--port", "99999"], 2, "65535"),
        (["list", "--from", "0001-01-01T00:00:00+14:00"], 2, "out of range"),
        (["list", "--from", "99999-01-01"], 2, "ISO 8601"),
        (
            [
                "status",
                "x",
                "--database-url",
                f"postgresql+asyncpg://u:{SECRET}@127.0.0.1:1/db?sslmode=bogus",
            ],
            1,
            "error:",
        ),
        (
            [
                "start",
                "greet",
                "--module",
                "tests.acceptance.cli_handlers",
                "--payload",
                r'"\ud800"',
            ],
            1,
            "error:",
        ),
    ],
)
def test_a_cli_error_is_one_line_without_secrets(args: list[str], code: int, says: str) -> None:
    done = zart(*args)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert SECRET not in done.stderr + done.stdout
    assert says in done.stderr
    if code == 1:
        assert done.stderr.startswith("error: ")
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
