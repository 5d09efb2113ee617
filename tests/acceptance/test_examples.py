"""Every example in examples/ runs as a user runs it and prints what it claims to show.

Each example runs in a fresh directory (its SQLite file lands there) with the interpreter of
the test run. The facts checked are the point of each example, so a broken example fails here.
A new example without an entry in ``FACTS`` fails too.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

#: example -> regular expressions its standard output must match (multiline mode)
FACTS: dict[str, list[str]] = {
    "dashboard.py": [
        r"^before signing in: a sign-in form \(True\), app\.js 401$",
        r"^signed in: HttpOnly=True, token in cookie=False$",
        r"^after: the dashboard loads /ops/dashboard/app\.js \(200\)$",
        r"^waiting executions listed by the dashboard: 1$",
        r"^event sent from the dashboard's form: 202$",
        r"^result: billing deployed, approved by grace$",
    ],
    "streams.py": [
        r"^progress when the reader first asked: \{'done': [0-4], 'of': 4\}$",
        r"^first connection: offsets \[0, 1\]$",
        r"^after reconnecting, every section once, in order: \['summary: all good', "
        r"'revenue: all good', 'costs: all good', 'outlook: all good'\]$",
        r"^final progress: \{'done': 4, 'of': 4\}$",
        r"^HTTP 200 text/event-stream",
        r"^  id: 2\n  data: \"costs: all good\"\n  id: 3\n  data: \"outlook: all good\"\n"
        r"  event: end$",
    ],
    "queues.py": [
        r"^12 sends on two workers: at most [12] at once \(cap 2\)$",
        r"^at most 1 at once per customer \(cap 1\)$",
        r"^operator: emails now allows 4 at once$",
        r"^first sent after the pause: 'password reset' \(priority 10\)$",
        r"^queue emails: concurrency=4 queued=0 running=0$",
        r"^5 debounced starts: 1 execution, synced avatar$",
        r"^singleton: the second start returned the first: True$",
    ],
    "demo.py": [
        r"^  status:  completed, claimed by a worker 1 time\(s\)$",
        r"^  3  create-customer +completed  2 ",
        r"^       attempt 0: failed  ConnectionError: billing API timed out$",
        r"^  4  fetch-referral-bonus +failed  ",
        r"referral_bonus=0\)$",
        r"started nothing new\n   \(1 execution stored\)",
    ],
    "onboarding.py": [
        r"^  create-customer: attempt 0 .*\n  create-customer: attempt 1 ",
        r"^  provision-pro: creating a pro workspace for cus_",
        r"^status: completed$",
        r"^second start returned 'signup-ada'; executions stored: 1$",
    ],
    "durable_loop.py": [
        r"^result: 4 reports, flagged: south, west$",
        r"^steps recorded, in order: fetch-reports, process-report-0, process-report-1, "
        r"process-report-2, process-report-3, notify-1, notify-3$",
    ],
    "retries.py": [
        r"fetch-exchange-rate: attempt 0 of 0\.\.3 \(retry: False\)",
        r"fetch-exchange-rate: attempt 2 of 0\.\.3 \(retry: True\)",
        r"^rate: 1\.08$",
        r"^legacy: gave up after 3 attempts \(TimeoutError: legacy API did not answer "
        r"\(attempt 2\)\)$",
    ],
    "error_handling.py": [
        r"^  alice: fetch-discount failed, step_or gave 0$",
        r"^checkout alice: completed, Receipt\(status='paid'",
        r"^checkout bob: completed, Receipt\(status='insufficient_funds', "
        r"detail='have 20, need 50'\)$",
        r"^checkout carol: completed, Receipt\(status='invoiced'",
        r"^pay-now carol: completed, Receipt\(status='payment_failed'",
        r"^checkout dave: FAILED, step_failed in check-balance:\n    builtins:KeyError: 'dave'$",
    ],
    "parallel.py": [
        r"check-search: attempt 0 failed\n(.*\n)*.*check-search: attempt 1 starts",
        r"^checked 4 services, all healthy: True$",
        r"search ok after 2 attempt\(s\)",
    ],
    "versioning.py": [
        r"^  expense-ada: waiting\nWednesday, deploy 2\n"
        r"replay check of deploy 2: 1 execution\(s\), 0 in flight would diverge$",
        r"^  escalate-to-director: EXP-bob$",
        r"^replay check of deploy 3: 2 execution\(s\), 1 in flight would diverge\n"
        r"  expense-ada \(waiting\): the run recorded event 'approval' at position 1 .*"
        r"runs step 'escalate-to-director' there",
        r"^  not yet: deploy 3 waits$",
        r"^  expense-ada steps: record-expense, approval, pay-expense$",
        r"^  expense-bob steps: record-expense, zart:patch:escalate, escalate-to-director,"
        r" approval, pay-expense$",
        r"^Thursday, deploy 3\nreplay check of deploy 3: 2 execution\(s\), 0 in flight",
        r"^  expense-cy: EXP-cy paid$",
        r"^after deploy 3: 1 of 3 diverge\n  expense-ada \(completed, finished: harmless\)$",
    ],
    "approval.py": [
        r"^  approval-ada: waiting for 'manager-approval' until 2030-01-02 00:00 UTC$",
        r"^approval-ada: provisioned \(gpu-cluster-01, approved by grace: go ahead\)$",
        r"^approval-bob: expired \(no decision within 1 day\)$",
    ],
    "cancellation.py": [
        r"^  charge-card: 4990 cents taken for order-7$",
        r"^  cancelled; its compensation is execution '[0-9a-f-]{36}'$",
        r"^  compensation 'order:on_cancel' undoes 'order-7'$",
        r"^  compensation: released 2 item\(s\), refunded 4990 cents$",
        r"^  order:on_cancel: completed, undoes 'order-7'$",
        r"^held stock: \{\}; money taken: \{\}$",
    ],
    "tags.py": [
        r"^usage report for acme, 2026-11\nbilling report for acme, 2026-11\n"
        r"usage report for globex, 2026-11$",
        r"^acme has 2 executions$",
        r"^acme's usage reports: \[\{'kind': 'usage', 'tenant': 'acme'\}\]$",
        r"^a bad filter: tag key 'tenant id' is not 1 to 64 letters",
    ],
    "followup.py": [
        r"^confirmation sent at 2030-01-01 00:00:00\+00:00\nfollow-up sent at +2030-01-02 00:00",
        r"^virtual time between them: 1 day, 0:00:00$",
        r"^status: completed, claimed by a worker 2 time\(s\)$",
    ],
    "schedules.py": [
        r"^  nightly-report@2030-10-26T00:30:00Z: 2030-10-26 02:30 CEST \(00:30 UTC\)$",
        r"^  nightly-report@2030-10-27T00:30:00Z: 2030-10-27 02:30 CEST \(00:30 UTC\)\n"
        r"  nightly-report@2030-10-28T01:30:00Z: 2030-10-28 02:30 CET \(01:30 UTC\)$",
        r"^  hourly-sync@2030-10-28T02:00:00Z: waiting for 'upstream-ready'$",
        r"^  hourly-sync@2030-10-28T03:00:00Z: skipped, the previous run is unfinished "
        r"\(1 execution\)$",
        r"^  hourly-sync@2030-10-28T02:00:00Z: synced crm after the event$",
        r"^  hourly-sync@2030-10-28T04:00:00Z: started",
        r"next fire time 08:00 UTC \(was 05:00 UTC; paused times are not caught up\)$",
    ],
    "children.py": [
        r"^order ada: Receipt ch_ada_4990, labels label-a, label-b, label-c$",
        r"^order bob: declined: \('bob', 99000\)$",
        r"^children of [0-9a-f]{8}\.\.\.: 4$",
        r"^  charge: completed, started by its parent$",
        r"^  ship-parcel: completed, started by its parent$",
    ],
    "messages.py": [
        r"^  ada: my printer is on fire\n  bob: unplug it\n  ada: thanks, solved$",
        r"^desk saw ticket ticket-1 close$",
        r"^an idle ticket: \(closed: nobody wrote for a while\)$",
        r"^a message after the end: execution 'ticket-1' is completed and accepts no messages$",
        r"^a message to nobody: no execution with id 'no-such-ticket'$",
    ],
    "crash_recovery.py": [
        r"^  reserve-stock +pass 1$",
        r"^  charge-card +pass 1$",
        r"^  print-shipping-label +pass 1, 2$",
        r"^  send-confirmation +pass 2$",
        r"^  status:  completed, claimed by a worker 2 time\(s\)$",
    ],
}


def test_every_example_is_tested() -> None:
    on_disk = {path.name for path in EXAMPLES.glob("*.py") if not path.name.startswith("_")}

    assert on_disk == set(FACTS)


@pytest.mark.parametrize("name", sorted(FACTS))
def test_example_runs_and_shows_what_it_claims(name: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    for fact in FACTS[name]:
        assert re.search(fact, result.stdout, re.MULTILINE), f"{fact!r} not in:\n{result.stdout}"
    assert (tmp_path / name.replace(".py", ".db")).exists()
