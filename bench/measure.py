"""What every workload module shares: the plan, timing, statement counting and PostgreSQL's
own counters.

The workload modules (``bench.baseline``, ``bench.zart_workloads``, ``bench.dbos_workloads``) run
in their own processes, started by ``bench.run``: each gets a :class:`Target` (which database,
which plan) as JSON on the command line and writes its figures as JSON to a file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import event
from sqlalchemy.engine import Engine

from zart.repositories import statements as raw

#: The resume workload records this many steps before resuming (the budget: one query for any).
RESUME_SIZES = (10, 100, 1000)

#: Workflows in flight in the concurrent workload (DESIGN section 7: 64-way).
IN_FLIGHT = 64


@dataclass(frozen=True)
class Plan:
    """How much of each workload to run; ``bench.run`` picks it per backend and prints it."""

    sequential_workflows: int = 40  # 10-step workflows, started and awaited one at a time
    sequential_long_workflows: int = 15  # 30-step workflows, for the marginal cost of a step
    concurrent_workflows: int = 640  # 10-step workflows, IN_FLIGHT at a time
    rounds: int = 3  # timed repetitions, interleaved across the columns; medians are reported
    baseline_inserts: int = 300  # per round and way
    commit_batches: tuple[int, int] = (5, 25)  # workflows; the slope between them is reported
    resume_sizes: tuple[int, ...] = RESUME_SIZES
    wake_repetitions: int = 50  # events offered / timers due, one waiting execution at a time
    sleepers: int = 10_000  # executions asleep at once (0: the sleepers workload is skipped)
    #: The worker's concurrency in the sleepers workload; None: one slot per sleeper, so what
    #: is measured is the wake-up, not how fast fewer slots get through the crowd.
    sleepers_concurrency: int | None = None
    #: The same crowd again on a worker with this many slots (0: skipped): it resumes them as
    #: fast as that worker completes whole runs (phase ``sleepers-slots``).
    sleepers_slots: int = 1000


@dataclass(frozen=True)
class Target:
    """One column of the table: a system on a backend."""

    system: str  # "zart" | "dbos" | "baseline"
    backend: str  # "postgresql" | "sqlite"
    url: str  # the SQLAlchemy URL the system is given
    plan: Plan = field(default_factory=Plan)
    # PostgreSQL only: an asyncpg DSN to the server's "postgres" database (for the counters)
    # and the name of the database the system uses.
    admin_dsn: str | None = None
    database: str | None = None
    work_dir: str | None = None  # a scratch directory (SQLite files, helper processes)

    def postgres(self) -> tuple[str, str]:
        """The admin DSN and database name of a PostgreSQL target."""
        if self.admin_dsn is None or self.database is None:
            raise RuntimeError(f"{self.system} on {self.backend} has no PostgreSQL counters")
        return self.admin_dsn, self.database

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Target:
        data = json.loads(text)
        plan = data.pop("plan")
        plan["commit_batches"] = tuple(plan["commit_batches"])
        plan["resume_sizes"] = tuple(plan["resume_sizes"])
        return cls(plan=Plan(**plan), **data)


@dataclass(frozen=True)
class Arguments:
    """The command line of a workload module."""

    target: Target
    out: Path
    # "round": one timed repetition of each timed workload; "extras": the rest; "wake" and
    # "sleepers": bench.wake's workloads
    phase: str
    record_resume: int | None  # DBOS's helper process: record N steps, then die


def parse_arguments() -> Arguments:
    """``--target JSON --out FILE --phase round|extras|wake|sleepers|sleepers-slots|composition
    [--record-resume N]``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True, help="a Target as JSON")
    parser.add_argument("--out", required=True, type=Path, help="where to write the figures")
    parser.add_argument(
        "--phase",
        choices=("round", "extras", "wake", "sleepers", "sleepers-slots", "composition"),
        default="round",
    )
    parser.add_argument("--record-resume", type=int, help="DBOS: record N steps, then die")
    arguments = parser.parse_args()
    return Arguments(
        Target.from_json(arguments.target),
        arguments.out,
        arguments.phase,
        arguments.record_resume,
    )


def write_figures(figures: dict[str, Any], out: Path) -> None:
    out.write_text(json.dumps(figures, indent=2, sort_keys=True))


def median(values: list[float]) -> float:
    return float(statistics.median(values))


# -- driving workflows ----------------------------------------------------------------------

RunOne = Callable[[], Awaitable[Any]]


async def run_sequential(run_one: RunOne, count: int) -> tuple[float, list[Any]]:
    """Seconds to run ``count`` workflows one after another (each started and awaited), and
    what each ``run_one`` returned (the workflow's id)."""
    started = time.perf_counter()
    ids = [await run_one() for _ in range(count)]
    return time.perf_counter() - started, ids


async def run_concurrent(run_one: RunOne, count: int, in_flight: int = IN_FLIGHT) -> float:
    """Seconds to run ``count`` workflows with ``in_flight`` of them started at any time."""
    gate = asyncio.Semaphore(in_flight)

    async def gated() -> None:
        async with gate:
            await run_one()

    started = time.perf_counter()
    await asyncio.gather(*(gated() for _ in range(count)))
    return time.perf_counter() - started


def summarize_rounds(rounds: list[dict[str, Any]], plan: Plan) -> dict[str, Any]:
    """Medians over the rounds of a system's timed workloads (or of the baseline)."""
    if "baseline" in rounds[0]:
        ways = rounds[0]["baseline"]
        counts = rounds[0].get("inserts", {})
        summary: dict[str, Any] = {}
        for way in ways:
            inserts = counts.get(way, plan.baseline_inserts)
            seconds = median([r["baseline"][way] for r in rounds])
            summary[way] = {
                "inserts": inserts,
                "repetitions": len(rounds),
                "seconds": [r["baseline"][way] for r in rounds],
                "us_per_insert": seconds / inserts * 1e6,
                "commits_per_second": inserts / seconds,
            }
        return {"baseline": summary}
    sequential = throughput([r["sequential"] for r in rounds], plan.sequential_workflows, 10)
    sequential_long = throughput(
        [r["sequential_30"] for r in rounds], plan.sequential_long_workflows, 30
    )
    # One more step's cost, the per-workflow costs (start, claim, finish, wait) taken out.
    marginal = (sequential_long["ms_per_workflow"] - sequential["ms_per_workflow"]) / 20 * 1e3
    # The same from the start and finish times each system stored: free of the caller's wait.
    # (A system that stores none, DBOS, gets its wall-clock figures: its handle awaits the
    # workflow's task in-process, so they carry no polling delay.)
    stored_10 = median(
        [r.get("stored_ms_10", r["sequential"] * 1e3 / plan.sequential_workflows) for r in rounds]
    )
    stored_30 = median(
        [
            r.get("stored_ms_30", r["sequential_30"] * 1e3 / plan.sequential_long_workflows)
            for r in rounds
        ]
    )
    concurrent = throughput([r["concurrent"] for r in rounds], plan.concurrent_workflows, 10)
    cpu = {
        workload: _cpu_medians([r["cpu"][workload] for r in rounds if "cpu" in r], workflows * 10)
        for workload, workflows in (
            ("sequential", plan.sequential_workflows),
            ("concurrent", plan.concurrent_workflows),
        )
    }
    return {
        "cpu_per_step": cpu,
        "sequential": {
            **sequential,
            "marginal_us_per_step": marginal,
            "stored_ms_per_workflow": stored_10,
            "stored_ms_per_workflow_30": stored_30,
            "stored_marginal_us_per_step": (stored_30 - stored_10) / 20 * 1e3,
        },
        "sequential_30": sequential_long,
        "concurrent": {**concurrent, "in_flight": IN_FLIGHT},
    }


def _cpu_medians(spent: list[dict[str, float | None]], steps: int) -> dict[str, float | None]:
    """Median µs of process and server CPU per step over the rounds (``None``: not measured,
    or no server of its own: SQLite)."""
    found: dict[str, float | None] = {}
    for who in ("process", "server"):
        values = [s[f"{who}_s"] for s in spent if s.get(f"{who}_s") is not None]
        found[f"{who}_us"] = median(values) / steps * 1e6 if values else None  # type: ignore[arg-type]
    return found


def throughput(seconds: list[float], workflows: int, steps: int) -> dict[str, Any]:
    """Figures of repeated timed runs of ``workflows`` workflows of ``steps`` steps each."""
    best = median(seconds)
    total_steps = workflows * steps
    return {
        "workflows": workflows,
        "steps_per_workflow": steps,
        "repetitions": len(seconds),
        "seconds": seconds,
        "steps_per_second": total_steps / best,
        "us_per_step": best / total_steps * 1e6,
        "ms_per_workflow": best / workflows * 1e3,
    }


# -- counting statements --------------------------------------------------------------------


class StatementCounter:
    """Counts the statements an engine sends, by kind (``before_cursor_execute``), and those
    the worker runs on its driver connections (``zart.repositories.statements.statement_observers``,
    which the engine's events never see)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.counts: Counter[str] = Counter()
        self.events: list[tuple[float, str]] = []  # (perf_counter, kind), in order
        self.active = False
        event.listen(engine, "before_cursor_execute", self._seen)
        raw.statement_observers.append(self._seen_raw)

    def _seen_raw(self, sql: str) -> None:
        self._seen(None, None, sql)

    def _seen(self, *args: Any) -> None:
        if not self.active:
            return
        kind = statement_kind(str(args[2]))
        self.counts[kind] += 1
        self.events.append((time.perf_counter(), kind))

    @contextmanager
    def counting(self) -> Iterator[Counter[str]]:
        self.counts = Counter()
        self.events = []
        self.active = True
        try:
            yield self.counts
        finally:
            self.active = False

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)
        if self._seen_raw in raw.statement_observers:
            raw.statement_observers.remove(self._seen_raw)


def statement_kind(sql: str) -> str:
    """A short label for a statement: its verb and the first table it names (a claim, the one
    statement with ``SKIP LOCKED``, is marked as such: a finish is a ``WITH…UPDATE`` too)."""
    label = _statement_kind(sql)
    return f"{label} (claim)" if "SKIP LOCKED" in sql.upper() else label


def _statement_kind(sql: str) -> str:
    words = sql.replace("(", " ").replace(",", " ").split()
    upper = [w.upper() for w in words]
    verb = upper[0] if upper else "?"
    keywords: tuple[str, ...] = ("FROM", "INTO", "UPDATE")
    if verb == "WITH":  # a CTE statement: name it by its first write and the table written
        for index, word in enumerate(upper):
            locking = index > 0 and upper[index - 1] in ("FOR", "KEY")  # FOR [NO KEY] UPDATE
            if word in ("INSERT", "UPDATE", "DELETE") and not locking:
                verb = f"WITH…{word}"
                upper, words = upper[index:], words[index:]
                keywords = ("INTO", "UPDATE", "FROM")
                break
    for keyword in keywords:
        for index, word in enumerate(upper[:-1]):
            if word == keyword and upper[index + 1] not in ("SELECT", "("):
                table = words[index + 1].strip('"')
                return f"{verb} {table}"
    return verb


# -- CPU ------------------------------------------------------------------------------------


def _stat_fields(pid: int | str) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (which may hold spaces)."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) ``pid`` has used."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_of_children(parent: int) -> float:
    """CPU seconds (user + system) of ``parent`` and its live children: a PostgreSQL server's
    postmaster and its backends. A backend that exits in between takes its seconds with it,
    so measure over windows in which the pools keep their connections."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(entry)
        except OSError:
            continue
        if int(entry) == parent or int(fields[1]) == parent:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def parent_of(pid: int) -> int:
    return int(_stat_fields(pid)[1])


async def postmaster_of(url: str) -> int | None:
    """The PostgreSQL server's main process behind ``url`` (the parent of a backend), or
    ``None`` for SQLite (in process: its CPU is the process's own)."""
    if not url.startswith("postgresql"):
        return None
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    conn = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )
    try:  # read while the backend lives: it exits once the connection closes
        return parent_of(int(await conn.fetchval("SELECT pg_backend_pid()")))
    finally:
        await conn.close()


class CpuMeter:
    """CPU seconds spent, over a window, by this process (every thread: the system's worker,
    its SQLite writer, the caller) and by the database server (PostgreSQL's processes)."""

    def __init__(self, postmaster: int | None) -> None:
        self.postmaster = postmaster

    def read(self) -> tuple[float, float | None]:
        server = None if self.postmaster is None else cpu_of_children(self.postmaster)
        return time.process_time(), server

    @contextmanager
    def measure(self) -> Iterator[dict[str, float | None]]:
        """``{"process_s", "server_s"}``, filled in when the block ends."""
        spent: dict[str, float | None] = {}
        process, server = self.read()
        try:
            yield spent
        finally:
            process_after, server_after = self.read()
            spent["process_s"] = process_after - process
            spent["server_s"] = (
                None if server is None or server_after is None else server_after - server
            )


def cpu_per(spent: dict[str, float | None], units: int) -> dict[str, float | None]:
    """µs of process and server CPU per unit (step, resumed execution)."""
    return {
        f"{who}_us": None if spent.get(f"{who}_s") is None else spent[f"{who}_s"] / units * 1e6  # type: ignore[operator]
        for who in ("process", "server")
    }


# -- PostgreSQL's counters ------------------------------------------------------------------


async def postgres_counters(admin_dsn: str, database: str) -> dict[str, int]:
    """Commits and rollbacks of ``database`` (``pg_stat_database``), transaction ids handed out
    and WAL syncs (both server-wide), read from a fresh connection to another database.

    ``pg_stat_database`` shows a backend's counts only once it flushed them: at the latest when
    it exits, or up to ten seconds after it went idle. Callers therefore close their
    connections (dispose the engine) before reading.
    """
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute("SELECT pg_stat_force_next_flush()")
        row = await conn.fetchrow(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = $1",
            database,
        )
        # The next transaction id to be handed out: only transactions that write get one.
        next_xid = await conn.fetchval("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")
        wal_sync = await conn.fetchval("SELECT wal_sync FROM pg_stat_wal")
    finally:
        await conn.close()
    return {
        "xact_commit": int(row["xact_commit"]),
        "xact_rollback": int(row["xact_rollback"]),
        "write_transactions": int(next_xid),
        "wal_syncs": int(wal_sync),
    }


async def wait_disconnected(admin_dsn: str, database: str) -> None:
    """Wait (up to 10 s) until no connection to ``database`` is left: all counts are flushed."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        for _ in range(200):
            left = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", database
            )
            if left == 0:
                return
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


def counter_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {key: after[key] - before[key] for key in before}


def per_workflow_slope(
    small: tuple[int, dict[str, int]], large: tuple[int, dict[str, int]]
) -> dict[str, float]:
    """Counter growth per workflow between a small and a large batch: the fixed costs of
    starting and stopping the system (worker registration, launch, shutdown) cancel out."""
    (m_small, d_small), (m_large, d_large) = small, large
    return {key: (d_large[key] - d_small[key]) / (m_large - m_small) for key in d_small}
