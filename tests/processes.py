"""Child processes for the acceptance tests: ``zart worker``, ``zart serve``, uvicorn.

Their stderr is read as it comes by a thread, so a chatty process (a worker logs every claim and
step at INFO) never blocks on a full pipe while the test is busy elsewhere, and a test waits for
the line that says the process is ready, whatever it logged before it.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx


class Process:
    """A running child process and everything it wrote to stderr so far."""

    def __init__(
        self,
        arguments: Sequence[str],
        *,
        cwd: Path,
        env: dict[str, str],
        stdout: int | None = subprocess.DEVNULL,
    ) -> None:
        self.popen = subprocess.Popen(
            list(arguments),
            cwd=cwd,
            env=env,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()  # end of file: the process closed stderr (or exited)

    @property
    def stderr(self) -> str:
        with self._changed:
            return "".join(self._lines)

    def wait_for(self, text: str, timeout: float = 90) -> str:
        """The first stderr line containing ``text``; fails with the whole stderr if the
        process ends first or ``timeout`` (a guard against a hang, not a speed check) passes."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(text in line for line in self._lines) or not self._reader.is_alive(),
                timeout=timeout,
            )
            for line in self._lines:
                if text in line:
                    return line
            reason = "exited" if found else "did not write it"
            raise AssertionError(
                f"process {reason} before a line with {text!r}: {''.join(self._lines)}"
            )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send ``signum`` (if it still runs), wait for the exit; its return code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signum)
        try:
            returncode = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            returncode = self.popen.wait(timeout=timeout)
        self._reader.join(timeout=timeout)
        if self.popen.stderr is not None:
            self.popen.stderr.close()
        return returncode


def until_healthy(process: Process, base: str, attempts: int = 600) -> None:
    """Poll ``BASE/healthz`` until a served process answers 200; fails if it exits first."""
    for _ in range(attempts):
        if not process.alive():
            process.stop()
            raise AssertionError(f"the server exited: {process.stderr}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"the server never answered {base}/healthz: {process.stderr}")


@contextmanager
def running(
    arguments: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    ready: str,
    stop: int = signal.SIGTERM,
    expect_clean_exit: bool = True,
) -> Iterator[Process]:
    """A process started, waited for until its stderr shows ``ready``, stopped with ``stop``
    on the way out; with ``expect_clean_exit``, it must then exit 0."""
    process = Process(arguments, cwd=cwd, env=env)
    try:
        process.wait_for(ready)
        yield process
    finally:
        returncode = process.stop(stop)
    if expect_clean_exit:
        assert returncode == 0, process.stderr
