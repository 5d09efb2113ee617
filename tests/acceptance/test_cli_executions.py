"""``zart start|status|show|list|wait|cancel|stats|event send`` as an operator runs them: real
processes of the entry point, a real worker process, PostgreSQL and SQLite.

Each invocation costs a process start, so every one asserts all it can show at once.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import running

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = "tests.acceptance.cli_handlers"
UNREACHABLE_POSTGRESQL = "postgresql+asyncpg://postgres:s3cret@127.0.0.1:1/x"
EXECUTION_KEYS = {
    # the HTTP API's Execution (DESIGN section 4) ...
    *("name", "durableExecutionId", "payload", "status", "scheduledAt", "completedAt"),
    *("version", "result"),
    # ... and what the CLI adds
    *("error", "runId", "runCount", "updatedAt", "crashedClaims"),
    *("compensationId", "compensates", "tags", "parentExecutionId"),
}


def environment(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    env["ZART_DATABASE_URL"] = database_url
    return env


def zart(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m zart ARGS`` on ``database_url`` (given through ZART_DATABASE_URL), run
    from the repository root so that ``--module tests...`` imports."""
    return subprocess.run(
        [sys.executable, "-m", "zart", *args],
        cwd=ROOT,
        env=environment(database_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def error_line(
    result: subprocess.CompletedProcess[str], code: int = 1, *, unvalidated: bool = False
) -> str:
    """The one ``error:`` line a failed command writes on stderr (asserting there is one);
    ``unvalidated``: after the note of a start by name without --module."""
    assert result.returncode == code, result
    lines = result.stderr.splitlines()
    if unvalidated:
        assert lines[0].startswith("note: the payload was not validated here"), result.stderr
        lines = lines[1:]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    return lines[0]


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result
    assert result.stderr == "", result.stderr
    return result.stdout


def started_by_name(result: subprocess.CompletedProcess[str], task: str) -> str:
    """A start without --module: done, with the one note that the payload went unvalidated."""
    assert result.returncode == 0, result
    assert result.stderr.startswith(f"note: the payload was not validated here (task {task!r}")
    assert len(result.stderr.splitlines()) == 1, result.stderr
    return result.stdout


@pytest.fixture
def worker(database_url: str) -> Iterator[None]:
    """``zart worker tests.acceptance.cli_handlers`` running (and registered) on the database."""
    with running(
        [sys.executable, "-m", "zart", "worker", HANDLERS, "--poll-interval", "0.05"],
        cwd=ROOT,
        env=environment(database_url),
        ready=" running ",  # written once the worker is registered
    ):
        yield


@pytest.mark.usefixtures("worker")
def test_a_worker_runs_what_the_cli_starts_and_the_cli_shows_it(database_url: str) -> None:
    # By name only: the live worker serves "greet", nothing is imported here.
    greeted = started_by_name(
        zart(
            database_url, "start", "greet", "--payload", '{"name": "ada"}',
            "--execution-id", "greet-1", "--wait",
        ),
        "greet",
    )  # fmt: skip
    # The status is read just after the start: the live worker, woken by NOTIFY, may have
    # claimed it already (or run it to its end).
    assert re.match(r"started greet-1 \(task greet, (scheduled|running|completed)\)\n", greeted)
    assert "  shout: completed\n" in greeted
    assert greeted.endswith('; result: {"greeting": "HELLO ADA"}\n')

    doomed = zart(
        database_url, "start", "doomed", "--payload", '{"name": "bob"}',
        "--execution-id", "doomed-1", "--wait", "--json",
    )  # fmt: skip
    assert error_line(doomed, unvalidated=True) == (
        "error: execution 'doomed-1' failed: step_failed in 'flaky': RetryExhausted: step"
        " 'flaky' failed after 2 attempts; last error: ConnectionError: bob is unreachable"
        " (attempt 1)"
    )
    failed = json.loads(doomed.stdout)
    assert failed["status"] == "failed"
    assert failed["error"]["kind"] == "step_failed"

    shown = ok(zart(database_url, "show", "doomed-1"))
    assert "Execution 'doomed-1' (task 'doomed')\n  status:  failed," in shown
    assert "Step timeline: 2 steps" in shown
    assert "\n  1  shout " in shown
    assert "\n  2  flaky                         failed     2  " in shown
    assert "attempt 0: failed  ConnectionError: bob is unreachable (attempt 0)\n" in shown
    assert "attempt 1: failed  ConnectionError: bob is unreachable (attempt 1)\n" in shown
    assert "error: retries exhausted after 2 attempts; bob is unreachable (attempt 1)" in shown

    detail = json.loads(ok(zart(database_url, "show", "doomed-1", "--json")))
    assert set(detail) == {
        "execution",
        "runs",
        "runId",
        "steps",
        "events",
        "divergence",
        "patches",
        "children",
    }
    assert detail["execution"]["durableExecutionId"] == "doomed-1"
    assert [run["runIndex"] for run in detail["runs"]] == [1]
    assert detail["runs"][0]["runId"] == detail["runId"] == detail["execution"]["runId"]
    assert [(s["name"], s["kind"], s["status"]) for s in detail["steps"]] == [
        ("shout", "step", "completed"),
        ("flaky", "step", "failed"),
    ]
    flaky = detail["steps"][1]
    assert flaky["retryAttempt"] == 1
    assert [a["status"] for a in flaky["attempts"]] == ["failed", "failed"]
    assert flaky["lastError"] == "ConnectionError: bob is unreachable (attempt 1)"
    assert flaky["lastErrorDetail"]["kind"] == "retry_exhausted"

    record = json.loads(ok(zart(database_url, "status", "greet-1", "--json")))
    assert set(record) == EXECUTION_KEYS
    assert record["name"] == "greet"
    assert record["payload"] == {"name": "ada"}
    assert record["status"] == "completed"
    assert record["result"] == {"greeting": "HELLO ADA"}
    assert record["completedAt"] >= record["scheduledAt"]

    listed = ok(zart(database_url, "list", "--sort-by", "task_name", "--asc")).splitlines()
    assert listed[0].split() == [
        *["EXECUTION", "ID", "TASK", "STATUS", "RUNS", "CREATED", "TOOK", "WAITS", "FOR"]
    ]
    assert [line.split()[:4] for line in listed[1:3]] == [
        ["doomed-1", "doomed", "failed", "1"],
        ["greet-1", "greet", "completed", "1"],
    ]
    assert listed[3] == "1-2 of 2 executions"

    page = json.loads(ok(zart(database_url, "list", "--status", "failed", "--json")))
    assert page["total"] == 1
    assert [item["durableExecutionId"] for item in page["items"]] == ["doomed-1"]
    assert set(page["items"][0]) == EXECUTION_KEYS

    counts = json.loads(ok(zart(database_url, "stats", "--json")))
    assert counts == {
        "scheduled": 0, "running": 0, "waiting": 0, "completed": 1, "failed": 1, "cancelled": 0,
    }  # fmt: skip


@pytest.mark.usefixtures("worker")
def test_events_waits_and_cancellation(database_url: str) -> None:
    started = ok(
        zart(
            database_url, "start", "approval", "--payload", '{"name": "ada"}',
            "--execution-id", "approval-1", "--module", HANDLERS,
        )
    )  # fmt: skip
    # As above: read just after the start, the live worker may have it already.
    line = r"started approval-1 \(task approval, (scheduled|running|waiting)\)\n"
    assert re.fullmatch(line, started)

    for _ in range(100):  # hang guard: until the wait (and its model's schema) is stored
        status = json.loads(ok(zart(database_url, "status", "approval-1", "--json")))
        if status["status"] == "waiting":
            break
    misfit = zart(
        database_url, "event", "send", "approval-1", "decision", "--payload", '{"approved": 1}'
    )
    assert error_line(misfit) == (
        "error: event 'decision' does not fit the model execution 'approval-1' waits for:"
        ' (payload): "by" is a required property; approved: 1 is not of type "boolean"'
    )
    assert misfit.stdout == ""

    sent = ok(
        zart(
            database_url, "event", "send", "approval-1", "decision",
            "--payload", '{"approved": true, "by": "grace"}',
        )
    )  # fmt: skip
    assert sent == "event 'decision' delivered to execution approval-1\n"

    waited = ok(zart(database_url, "wait", "approval-1", "--timeout", "30"))
    assert "  decision (event): completed\n" in waited
    assert "  execution completed\n" in waited
    assert waited.endswith('; result: "ada: approved by grace"\n')

    again = zart(database_url, "event", "send", "approval-1", "decision", "--payload", "{}")
    assert error_line(again) == "error: execution 'approval-1' is completed and accepts no events"

    # No event comes: the wait gives up (exit code 3) and the execution keeps waiting.
    pending = zart(
        database_url, "start", "approval", "--payload", '{"name": "bob"}',
        "--execution-id", "approval-2", "--wait", "--timeout", "0.2", "--json",
    )  # fmt: skip
    assert pending.returncode == 3
    note, error = pending.stderr.splitlines()  # no --module: the payload went unvalidated
    assert note.startswith("note: the payload was not validated here (task 'approval'")
    assert error.startswith("error: ")
    assert "is still" in error
    assert "after 0.2s; it keeps running" in pending.stderr
    assert json.loads(pending.stdout)["status"] in {"scheduled", "running", "waiting"}

    cancelled = json.loads(ok(zart(database_url, "cancel", "approval-2", "--json")))
    assert cancelled["durableExecutionId"] == "approval-2"
    assert cancelled["status"] == "cancelled"

    twice = zart(database_url, "cancel", "approval-2")
    assert error_line(twice) == "error: execution 'approval-2' already finished (cancelled)"
    assert twice.stdout == ""

    ended = zart(database_url, "wait", "approval-2")
    assert error_line(ended) == "error: execution 'approval-2' was cancelled"
    assert "  execution cancelled\n" in ended.stdout


@pytest.mark.usefixtures("worker")
def test_a_cancel_from_the_cli_runs_the_compensation_on_the_worker(database_url: str) -> None:
    """``zart cancel`` imports no handlers: the live worker that runs ``order:on_cancel`` is
    how it knows that ``order`` has a compensation."""
    started_by_name(
        zart(database_url, "start", "order", "--payload", '{"name": "ada"}', "--execution-id",
             "order-1"),
        "order",
    )  # fmt: skip
    for _ in range(100):  # hang guard: until the worker has begun it and it waits
        if json.loads(ok(zart(database_url, "status", "order-1", "--json")))["status"] == "waiting":
            break

    cancelled = ok(zart(database_url, "cancel", "order-1"))
    found = re.fullmatch(r"cancelled order-1; its on_cancel runs as ([0-9a-f-]{36})\n", cancelled)
    assert found, cancelled
    compensation_id = found.group(1)

    waited = ok(zart(database_url, "wait", compensation_id, "--timeout", "30"))
    assert waited.endswith('; result: "refunded ada"\n')
    shown = ok(zart(database_url, "show", "order-1"))
    assert f"  undone:  by its on_cancel, execution {compensation_id!r}\n" in shown
    assert "  status:  cancelled, " in shown
    status = json.loads(ok(zart(database_url, "status", compensation_id, "--json")))
    assert (status["name"], status["compensates"], status["status"]) == (
        "order:on_cancel",
        "order-1",
        "completed",
    )
    assert "  undoes:  the cancelled execution 'order-1'\n" in ok(
        zart(database_url, "status", compensation_id)
    )


def test_unknown_ids_and_refused_starts_store_nothing(database_url: str) -> None:
    for command in (  # (wait reads as show does)
        ["status", "nope"],
        ["show", "nope"],
        ["cancel", "nope"],
        ["event", "send", "nope", "decision", "--payload", "{}"],
    ):
        result = zart(database_url, *command)
        assert error_line(result) == "error: no execution with id 'nope'", command
        assert result.stdout == ""

    # No worker serves "greet" and nothing is imported: the task is unknown.
    by_name = zart(database_url, "start", "greet", "--payload", '{"name": "ada"}')
    assert error_line(by_name) == (
        "error: unknown task 'greet': no durable handler is registered under that name"
        " (no live worker serves it either; --module imports handlers here)"
    )
    imported = ["--module", HANDLERS]
    invalid = zart(database_url, "start", "greet", "--payload", '{"nom": "ada"}', *imported)
    assert error_line(invalid) == "error: invalid payload for task 'greet': name: Field required"

    first = zart(
        database_url, "start", "greet", "--payload", '{"name": "ada"}', "-m", HANDLERS,
        "--execution-id", "greet-1", "--json",
    )  # fmt: skip
    assert json.loads(ok(first))["status"] == "scheduled"
    same = ["start", "greet", "--payload", '{"name": "ada"}', "--execution-id", "greet-1"]
    assert ok(zart(database_url, *same, *imported)) == (
        "execution greet-1 already exists (scheduled, task greet); started nothing new\n"
    )
    other = ["start", "greet", "--payload", '{"name": "bob"}', "--execution-id", "greet-1"]
    assert "execution 'greet-1' already exists" in error_line(zart(database_url, *other, *imported))

    run = zart(database_url, "show", "greet-1", "--run", "no-such-run")
    assert error_line(run) == "error: execution 'greet-1' has no run with id 'no-such-run'"

    stored = json.loads(ok(zart(database_url, "list", "--json")))
    assert stored["total"] == 1
    assert stored["items"][0]["payload"] == {"name": "ada"}


@pytest.mark.parametrize(
    ("command", "code", "message"),
    [
        (["start", "greet", "--payload", "{oops"], 1, "error: the payload is not valid JSON: "),
        (["event", "send", "x", "e", "--payload", "[1,"], 1, "error: the event payload is not"),
        (["list", "--status", "sleeping"], 2, "'sleeping' is not one of"),
        (["list", "--from", "yesterday"], 2, "'yesterday' is not an ISO 8601 time"),
    ],
    ids=["start-payload", "event-payload", "list-status", "list-from"],
)
def test_bad_input_is_refused_before_touching_the_database(
    tmp_path: Path, command: list[str], code: int, message: str
) -> None:
    database = tmp_path / "zart.db"

    result = zart(f"sqlite+aiosqlite:///{database}", *command)

    assert result.returncode == code, result
    assert message in " ".join(result.stderr.split())
    assert result.stdout == ""
    assert not database.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["list"],
        ["start", "greet", "--payload", "{}"],
        ["event", "send", "x", "e", "--payload", "{}"],
    ],
    ids=["list", "start", "event-send"],
)
def test_an_unreachable_database_is_one_error_line(command: list[str]) -> None:
    result = zart(UNREACHABLE_POSTGRESQL, *command)

    assert error_line(result).startswith(
        "error: cannot connect to postgresql+asyncpg://postgres:***@127.0.0.1:1/x"
    )
    assert "s3cret" not in result.stderr


def test_a_missing_sqlite_file_is_reported_not_created(tmp_path: Path) -> None:
    database = tmp_path / "zart.db"

    result = zart(f"sqlite+aiosqlite:///{database}", "wait", "x")

    assert error_line(result) == (
        f"error: no SQLite database at {database}; `zart db upgrade` creates one"
    )
    assert not database.exists()


def test_wait_on_a_terminal_shows_a_live_status(sqlite_template: Path, tmp_path: Path) -> None:
    # What a terminal shows does not depend on the database: SQLite only.
    database_url = f"sqlite+aiosqlite:///{shutil.copyfile(sqlite_template, tmp_path / 'z.db')}"
    ok(zart(database_url, "start", "greet", "--payload", '{"name": "ada"}', "-m", HANDLERS,
            "--execution-id", "greet-1"))  # fmt: skip
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "zart", "wait", "greet-1", "--timeout", "0.5"],
            cwd=ROOT,
            env={**environment(database_url), "TERM": "xterm", "COLUMNS": "100"},
            stdout=follower,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.close(follower)
        follower = -1
        screen = _read_all(leader)
        _, stderr = process.communicate(timeout=30)
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)

    assert process.returncode == 3, stderr
    assert "execution scheduled" in screen  # a line kept on screen
    assert "greet-1: scheduled, 0 of 0 steps completed" in screen  # the spinner's status
    assert "\x1b[" in screen  # drawn live, with terminal control sequences
    assert stderr.startswith("error: execution 'greet-1' is still scheduled after 0.5s")


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--execution-id", "x" * 300, "error: execution id 'xxx"),
        ("--execution-id", "a\x01b" + "\u00e9" * 300, "error: execution id 'a\\x01b"),
    ],
)
def test_a_start_with_an_id_that_cannot_be_stored_is_one_error_line(
    database_url: str, option: str, value: str, message: str
) -> None:
    result = zart(
        database_url, "start", "greet", "--module", "tests.acceptance.cli_handlers",
        "--payload", '{"name": "ada"}', option, value,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(message), result.stderr
    assert "at most 255 fit" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    listed = zart(database_url, "list")
    assert "greet" not in listed.stdout
