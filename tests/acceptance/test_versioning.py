"""Safe deploys as a team runs them: a run started on version 1 of a handler waits for an
approval while version 2 (a pricing change behind ``zart.patched``) is deployed as a new
worker process; the old run finishes on the old path, a new run takes the new one, ``zart
show`` names the patch, and ``zart replay`` passes version 2 but refuses an unpatched version
3, naming the run it would break."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import AbstractContextManager
from pathlib import Path

import zart
from tests.integration.runtime_helpers import wait_for_status
from tests.processes import Process, running

ROOT = Path(__file__).resolve().parents[2]


def environment(database_url: str, journal: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    env["ZART_DATABASE_URL"] = database_url
    env["APPROVAL_JOURNAL"] = str(journal)
    return env


def worker(module: str, env: dict[str, str]) -> AbstractContextManager[Process]:
    return running(
        [sys.executable, "-m", "zart", "worker", module, "--poll-interval", "0.05"],
        cwd=ROOT,
        env=env,
        ready=" running ",
    )


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zart", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def effects(journal: Path, execution_id: str) -> list[str]:
    lines = journal.read_text().splitlines() if journal.exists() else []
    return [line.split(" ", 1)[1] for line in lines if line.startswith(f"{execution_id} ")]


async def test_a_patched_deploy_keeps_old_runs_on_the_old_path(
    database_url: str, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.txt"
    env = environment(database_url, journal)
    async with zart.DurableScheduler(database_url) as scheduler:
        with worker("tests.acceptance.approval_v1", env):
            await scheduler.start("deploy-approval", {"amount": 10}, execution_id="old-1")
            await wait_for_status(scheduler, "old-1", zart.ExecutionStatus.WAITING)
        # The deploy: version 1's worker is gone, version 2's starts.
        with worker("tests.acceptance.approval_v2", env):
            await scheduler.start("deploy-approval", {"amount": 10}, execution_id="new-1")
            await wait_for_status(scheduler, "new-1", zart.ExecutionStatus.WAITING)
            for execution_id in ("old-1", "new-1"):
                await scheduler.offer_event(execution_id, "approval", {"answer": "approved"})
            assert await scheduler.wait("old-1", timeout=30) == "old pricing: 20, approved"
            assert await scheduler.wait("new-1", timeout=30) == "new pricing: 30, approved"

    assert effects(journal, "old-1") == ["quote"]  # the old run's quote never ran again
    assert effects(journal, "new-1") == ["new-quote"]
    new = json.loads(cli(env, "show", "new-1", "--json").stdout)
    old = json.loads(cli(env, "show", "old-1", "--json").stdout)
    assert (new["patches"], old["patches"]) == (["new-pricing"], [])
    assert (new["divergence"], old["divergence"]) == (None, None)
    assert "  patches: new-pricing\n" in cli(env, "show", "new-1").stdout

    # The replay check: version 2 follows both histories; version 3 would break the old run.
    checked = cli(env, "replay", "tests.acceptance.approval_v2", "--task", "deploy-approval")
    assert (checked.returncode, checked.stdout) == (
        0,
        "replayed 2 execution(s): 0 diverged\n",
    ), checked.stderr
    refused = cli(env, "replay", "tests.acceptance.approval_v3", "--limit", "10")
    assert refused.returncode == 1, refused.stderr
    assert refused.stdout.splitlines() == [
        "DIVERGED old-1 (task 'deploy-approval', completed): the run recorded step"
        " 'approval-quote' at position 0 in the handler's own task, but the code now runs step"
        " 'approval-quote-v2' there (a step inserted or renamed); the handler's code changed"
        " under a running execution",
        "replayed 2 execution(s): 1 diverged",
    ]
    # Neither is held: the answers refuse and change nothing.
    not_held = cli(env, "resume-diverged", "old-1")
    assert not_held.returncode == 1
    assert not_held.stderr.startswith("error: execution 'old-1': no replay divergence holds it")
    unknown = cli(env, "fail-diverged", "nope")
    assert unknown.returncode == 1
    assert "nope" in unknown.stderr
    bad = cli(env, "replay", "tests.acceptance.approval_v2", "--task", "no-such-task")
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: no durable handler 'no-such-task' is registered")
