"""``zart.pytest_plugin`` as an application uses it: a pytest run of its own (a real process),
with ``zart_engine`` overridden by the application's engine on one shared database. Each
test starts with Zart's tables empty, and declared cron schedules fire only in tests marked
``zart_schedules``, when they call ``fire_schedules``, whose executions are awaited directly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CONFTEST = """
import os

import pytest

from zart.database import create_engine

pytest_plugins = ["zart.pytest_plugin"]


@pytest.fixture
async def zart_engine():
    engine = create_engine(os.environ["PLUGIN_TEST_DATABASE_URL"])
    yield engine
    await engine.dispose()
"""

TESTS = """
from datetime import timedelta

import pytest

import zart
from zart.testing import DEFAULT_START, clock_of, fire_schedules, run_to_completion


@zart.durable("plugin-nightly", schedule="0 3 * * *")
async def nightly() -> str:
    return f"report for {zart.context().execution_id}"


@zart.durable("plugin-weekly", schedule="0 4 * * 1")
async def weekly() -> str:
    return "weekly"


@zart.durable("plugin-sleeper")
async def sleeper(days: int) -> int:
    await zart.sleep("nap", timedelta(days=days))
    return days


async def test_1_an_unmarked_test_stores_and_fires_no_schedule(zart_scheduler):
    execution_id = await zart_scheduler.start(sleeper, 10)  # the clock passes many 03:00s
    assert await run_to_completion(zart_scheduler, execution_id) == 10
    assert await zart_scheduler.list_schedules() == []
    assert await fire_schedules(zart_scheduler) == []
    assert (await zart_scheduler.list_executions()).total == 1


async def test_2_the_next_test_starts_from_empty_tables(zart_scheduler):
    assert (await zart_scheduler.list_executions()).total == 0


@pytest.mark.zart_schedules("plugin-nightly")
async def test_3_a_named_schedule_fires_when_asked_and_is_awaited_directly(zart_scheduler):
    assert [s.name for s in await zart_scheduler.list_schedules()] == ["plugin-nightly"]
    [first] = await fire_schedules(zart_scheduler)
    assert clock_of(zart_scheduler).now() == DEFAULT_START + timedelta(hours=3)
    assert await run_to_completion(zart_scheduler, first) == f"report for {first}"
    clock_of(zart_scheduler).advance_to(DEFAULT_START + timedelta(days=1, hours=3))
    [second] = await fire_schedules(zart_scheduler)
    assert await zart_scheduler.wait(second, timeout=30) == f"report for {second}"


@pytest.mark.zart_schedules
async def test_4_the_bare_marker_stores_every_declared_schedule(zart_scheduler):
    names = sorted(s.name for s in await zart_scheduler.list_schedules())
    assert names == ["plugin-nightly", "plugin-weekly"]
"""

INI = """[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""


def test_the_plugins_fixtures_and_marker_in_an_applications_suite(
    database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_app.py").write_text(TESTS)
    (tmp_path / "pytest.ini").write_text(INI)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}

    suite = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=tmp_path,
        env={**env, "PLUGIN_TEST_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert suite.returncode == 0, suite.stdout + suite.stderr
    assert "4 passed" in suite.stdout, suite.stdout
