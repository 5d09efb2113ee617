"""The event loop of a worker process (``zart.worker.event_loop_factory``, which every ``zart``
command runs on): uvloop's where installed, asyncio's with ``ZART_EVENT_LOOP=asyncio``, and a
clear error for a value it does not know."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
import uvloop

from zart.errors import ConfigurationError
from zart.worker import event_loop_factory


def test_uvloop_by_default_where_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZART_EVENT_LOOP", raising=False)
    factory = event_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_asyncio_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZART_EVENT_LOOP", "asyncio")
    assert event_loop_factory() is None  # asyncio.Runner's default loop


def test_a_value_it_does_not_know_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZART_EVENT_LOOP", "trio")
    with pytest.raises(ConfigurationError, match="ZART_EVENT_LOOP must be one of uvloop, asyncio"):
        event_loop_factory()


def test_a_zart_command_with_a_bad_value_prints_one_error_line() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "zart", "db", "check", "--database-url", "sqlite:///x.db"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"ZART_EVENT_LOOP": "trio", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert run.returncode == 1, (run.stdout, run.stderr)
    assert run.stderr.strip().splitlines() == [
        "error: ZART_EVENT_LOOP must be one of uvloop, asyncio, not 'trio'"
    ]


def test_the_default_loop_runs_a_coroutine() -> None:
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        assert runner.run(asyncio.sleep(0, result=42)) == 42
