"""Pytest fixtures for applications that use Zart (needs pytest and pytest-asyncio).

Opt in from the application's ``conftest.py``::

    pytest_plugins = ["zart.pytest_plugin"]

Fixtures:

- ``zart_engine``: the engine Zart runs on in tests; ``None`` (a temporary SQLite file of
  Zart's own) unless the application overrides it in its ``conftest.py`` with its own test
  engine, so that transactional steps and ``start(..., session=...)`` see its tables.
- ``zart_scheduler``: :func:`zart.testing.durable_test_scheduler` on ``zart_engine``: a
  migrated scheduler on a :class:`~zart.testing.FakeClock`, a worker in the test's event
  loop, Zart's tables emptied first. Cron schedules fire only in tests marked
  ``@pytest.mark.zart_schedules`` (every declared schedule) or
  ``@pytest.mark.zart_schedules("nightly-report", ...)``, when they call
  :func:`zart.testing.fire_schedules`.

The recipe, with the application's tables: ``docs/testing.md``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from zart.scheduler import DurableScheduler
from zart.testing import durable_test_scheduler

MARKER = "zart_schedules"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*task_names): the zart_scheduler fixture stores these declared cron"
        " schedules (all, without names) for zart.testing.fire_schedules",
    )


@pytest.fixture
def zart_engine() -> AsyncEngine | None:
    """Override in your ``conftest.py`` to run Zart on your application's test engine."""
    return None


@pytest_asyncio.fixture
async def zart_scheduler(
    zart_engine: AsyncEngine | None, request: pytest.FixtureRequest
) -> AsyncIterator[DurableScheduler]:
    """A :func:`~zart.testing.durable_test_scheduler` on ``zart_engine`` for one test."""
    marker = request.node.get_closest_marker(MARKER)
    schedules: Any = False if marker is None else (list(marker.args) or True)
    async with durable_test_scheduler(engine=zart_engine, schedules=schedules) as scheduler:
        yield scheduler
