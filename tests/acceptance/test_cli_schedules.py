"""``zart schedules ...`` as a user runs it: a real process on both backends, the stored
schedules checked afterwards."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from tests.acceptance.scheduled_tasks import scheduled_report
from tests.acceptance.test_cli_db import assert_one_line_error, zart_cli
from zart import DurableScheduler, ScheduleRecord

ROOT = Path(__file__).resolve().parents[2]


def stored(url: str) -> dict[str, ScheduleRecord]:
    async def read() -> dict[str, ScheduleRecord]:
        async with DurableScheduler(url) as scheduler:
            return {s.name: s for s in await scheduler.list_schedules()}

    return asyncio.run(read())


@pytest.fixture
def two_schedules(database_url: str) -> str:
    async def add() -> None:
        async with DurableScheduler(database_url) as scheduler:
            await scheduler.add_schedule("nightly", scheduled_report, "0 2 * * *")
            await scheduler.add_schedule(
                "berlin-morning",
                scheduled_report,
                "0 9 * * MON-FRI",
                timezone="Europe/Berlin",
                payload={"team": "ops"},
                overlap="allow",
                catchup="all",
            )

    asyncio.run(add())
    return database_url


def test_list_with_no_schedules(database_url: str, tmp_path: Path) -> None:
    result = zart_cli("schedules", "list", "--database-url", database_url, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "no schedules\n"


def test_list_prints_a_table(two_schedules: str, tmp_path: Path) -> None:
    result = zart_cli("schedules", "list", "--database-url", two_schedules, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    header, first, second = result.stdout.splitlines()
    assert header.split() == [
        "NAME", "TASK", "CRON", "TIMEZONE", "STATE", "NEXT", "FIRE", "(UTC)", "LAST", "FIRE",
        "(UTC)",
    ]  # fmt: skip
    assert first.startswith("berlin-morning  cli-scheduled-report  0 9 * * MON-FRI  Europe/Berlin")
    assert " active " in first
    assert second.startswith("nightly ")
    assert second.rstrip().endswith("-")  # never fired


def test_list_as_json(two_schedules: str, tmp_path: Path) -> None:
    result = zart_cli("schedules", "list", "--json", "--database-url", two_schedules, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [s["name"] for s in listed] == ["berlin-morning", "nightly"]
    assert listed[0] | {"next_fire_at": None} == {
        "name": "berlin-morning",
        "task_name": "cli-scheduled-report",
        "cron": "0 9 * * MON-FRI",
        "timezone": "Europe/Berlin",
        "payload": {"team": "ops"},
        "overlap": "allow",
        "catchup": "all",
        "paused": False,
        "next_fire_at": None,
        "last_fire_at": None,
    }
    assert listed[0]["next_fire_at"].endswith("+00:00")


def test_pause_and_resume(two_schedules: str, tmp_path: Path) -> None:
    paused = zart_cli(
        "schedules", "pause", "nightly", "--database-url", two_schedules, cwd=tmp_path
    )

    assert paused.returncode == 0, paused.stderr
    row = paused.stdout.splitlines()[1]
    assert " paused " in row
    # A paused schedule fires at no time: no next fire time, past or future, is shown.
    assert re.search(r" paused +- ", row), row
    assert stored(two_schedules)["nightly"].paused
    assert not stored(two_schedules)["berlin-morning"].paused
    listed = zart_cli("schedules", "list", "--json", "--database-url", two_schedules, cwd=tmp_path)
    by_name = {s["name"]: s for s in json.loads(listed.stdout)}
    assert by_name["nightly"]["next_fire_at"] is None
    assert by_name["berlin-morning"]["next_fire_at"] is not None

    resumed = zart_cli(
        "schedules", "resume", "nightly", "--json", "--database-url", two_schedules, cwd=tmp_path
    )

    assert resumed.returncode == 0, resumed.stderr
    document = json.loads(resumed.stdout)  # the schedule, one object, not a list of one
    assert document["name"] == "nightly"
    assert document["paused"] is False
    assert document["next_fire_at"] is not None
    assert not stored(two_schedules)["nightly"].paused


@pytest.mark.parametrize("command", ["pause", "resume", "remove"])
def test_an_unknown_schedule_is_one_error_line(
    database_url: str, tmp_path: Path, command: str
) -> None:
    result = zart_cli("schedules", command, "ghost", "--database-url", database_url, cwd=tmp_path)

    assert_one_line_error(result, "no schedule named 'ghost'")


def test_add_then_remove(database_url: str) -> None:
    added = zart_cli(
        "schedules", "add", "weekly", "cli-scheduled-report", "0 6 * * 1",
        "--timezone", "America/New_York", "--payload", '{"team": "sales"}',
        "--import", "tests.acceptance.scheduled_tasks", "--database-url", database_url,
        cwd=ROOT,
    )  # fmt: skip

    assert added.returncode == 0, added.stderr
    schedule = stored(database_url)["weekly"]
    assert (schedule.cron, schedule.timezone, schedule.payload) == (
        "0 6 * * 1",
        "America/New_York",
        {"team": "sales"},
    )

    removed = zart_cli("schedules", "remove", "weekly", "--database-url", database_url, cwd=ROOT)

    assert removed.returncode == 0, removed.stderr
    assert removed.stdout == "removed schedule 'weekly'\n"
    assert stored(database_url) == {}


# Validation does not depend on the backend: one is enough (each case is a process start).
@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["0 9 * *"], "has 4 fields"),
        (["0 9 * * *", "--timezone", "Europe/Atlantis"], "unknown time zone 'Europe/Atlantis'"),
        (["0 9 * * *", "--overlap", "sometimes"], "unknown overlap policy 'sometimes'"),
        (["0 9 * * *", "--payload", "{not json"], "--payload is not JSON"),
        (["0 9 * * *", "--payload", '{"team": 7}'], "invalid payload"),
    ],
)
def test_add_refuses_bad_input_and_stores_nothing(
    database_url: str, args: list[str], message: str
) -> None:
    result = zart_cli(
        "schedules", "add", "bad", "cli-scheduled-report", *args,
        "--import", "tests.acceptance.scheduled_tasks", "--database-url", database_url,
        cwd=ROOT,
    )  # fmt: skip

    assert_one_line_error(result, message)
    assert stored(database_url) == {}
