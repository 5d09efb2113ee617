"""``make bench``: Zart against a bare INSERT+COMMIT and DBOS Transact, side by side, in one run.

Starts a throwaway PostgreSQL with production durability (``tests/pg_server.py``,
``durable=True``: fsync, synchronous_commit and full_page_writes on) and a scratch directory for
the SQLite files, then runs every workload of every column in its own process, one column at a
time (so no two systems compete for the two cores), prints one table and writes
``bench/results/latest.json``.

    .venv-bench/bin/python bench/run.py [--quick] [--only zart,dbos,baseline] [--backends ...]
        [--phases rounds,extras,wake,sleepers,composition,scale] [--sleepers N]
        [--sqlite-sleepers N]

The scale phase (``bench/scale.py``; PostgreSQL, Zart only) loads ``ZART_BENCH_SCALE``
finished executions (default 1,000,000; 0 skips it) into Zart's bench database, after Zart's
other phases there.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

from bench.measure import Plan, Target, summarize_rounds  # noqa: E402
from bench.report import render, verdicts  # noqa: E402
from tests.pg_server import PostgresServer, start_postgres  # noqa: E402

RESULTS = ROOT / "bench" / "results"
MODULES = {
    "baseline": "bench.baseline",
    "zart": "bench.zart_workloads",
    "dbos": "bench.dbos_workloads",
}
WAKE_MODULE = "bench.wake"  # Zart's wake-up workloads: phases "wake" and "sleepers"
SCALE_MODULE = "bench.scale"  # one million finished executions: phase "scale"
COMPOSITION_MODULE = "bench.composition"  # children, messages, a fan-out: "composition"
PHASES = ("rounds", "extras", "wake", "sleepers", "composition", "scale")
COLUMN_TIMEOUT = 900  # seconds; a column that takes longer is reported as failed

# Sized for ~10 minutes of `make bench` on a 2-core machine whose durable commit takes ~1 ms.
PLANS = {
    # Five rounds of 120 sequential workflows: with three of 40, Zart's sequential window was
    # a quarter of a second, and the same-run Zart ÷ DBOS ratio moved ±13% between runs of
    # the same code (4.45-5.78x), most of it the machine's fsync wandering within a run.
    "postgresql": Plan(
        sequential_workflows=120,
        sequential_long_workflows=15,
        concurrent_workflows=640,
        rounds=5,
        wake_repetitions=50,
        sleepers=10_000,
    ),
    # SQLite commits are slower (DBOS's, in rollback-journal mode, much slower): fewer there.
    "sqlite": Plan(
        sequential_workflows=20,
        sequential_long_workflows=8,
        concurrent_workflows=320,
        rounds=3,
        baseline_inserts=200,
        wake_repetitions=50,
        sleepers=0,  # SQLite's sleepers are optional (--sqlite-sleepers N): the budget is PG's
    ),
}
QUICK = Plan(
    sequential_workflows=5,
    sequential_long_workflows=2,
    concurrent_workflows=64,
    rounds=2,
    baseline_inserts=50,
    commit_batches=(2, 6),
    resume_sizes=(10, 100),
    wake_repetitions=5,
    sleepers=200,
    sleepers_concurrency=100,
    sleepers_slots=50,
)


def _targets(
    server: PostgresServer | None,
    work_dir: Path,
    systems: list[str],
    plans: dict[str, Plan],
) -> list[Target]:
    targets: list[Target] = []
    for backend, plan in plans.items():
        for system in systems:
            if backend == "postgresql":
                assert server is not None
                database = "dbos_bench" if system == "dbos" else "zart_bench"
                # DBOS takes a plain postgresql:// URL (it brings psycopg); Zart uses asyncpg.
                driver = "postgresql" if system == "dbos" else "postgresql+asyncpg"
                targets.append(
                    Target(
                        system=system,
                        backend=backend,
                        url=server.url(database, driver=driver),
                        plan=plan,
                        admin_dsn=server.url("postgres", driver="postgresql"),
                        database=database,
                        work_dir=str(work_dir),
                    )
                )
            else:
                url = (
                    f"sqlite:///{work_dir / 'dbos.sqlite'}"
                    if system == "dbos"
                    else f"sqlite+aiosqlite:///{work_dir / 'zart.db'}"
                )
                targets.append(
                    Target(
                        system=system, backend=backend, url=url, plan=plan, work_dir=str(work_dir)
                    )
                )
    return targets


def _run_phase(
    target: Target, phase: str, work_dir: Path, label: str, module: str | None = None
) -> dict[str, Any]:
    """Run one phase of one column in its own process; its figures, or ``{"error": ...}``."""
    out = work_dir / f"{target.system}-{target.backend}-{label}.json"
    command = [
        sys.executable,
        "-m",
        module or MODULES[target.system],
        "--target",
        target.to_json(),
        "--out",
        str(out),
        "--phase",
        phase,
    ]
    print(f"--- {target.system} on {target.backend}: {label} ...", end=" ", flush=True)
    started = time.perf_counter()
    try:
        finished = subprocess.run(command, cwd=ROOT, timeout=COLUMN_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        print("timed out", flush=True)
        return {"error": f"{label} timed out after {COLUMN_TIMEOUT} s"}
    seconds = time.perf_counter() - started
    if finished.returncode != 0 or not out.exists():
        print(f"FAILED (exit code {finished.returncode})", flush=True)
        return {"error": f"{label}: exit code {finished.returncode}"}
    print(f"{seconds:.0f} s", flush=True)
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures


def _run_all(
    targets: list[Target], work_dir: Path, phases: tuple[str, ...] = PHASES
) -> dict[str, dict[str, Any]]:
    """Rounds first, every column in turn in each round (so a slow patch of the machine or
    its disk hits every column alike), then each column's extras (resume, commits) and, for
    Zart, its wake-up workloads (``bench.wake``)."""
    rounds: dict[str, list[dict[str, Any]]] = {key(t): [] for t in targets}
    errors: dict[str, str] = {}
    for number in range(1, max(t.plan.rounds for t in targets) + 1):
        if "rounds" not in phases:
            break
        for target in targets:
            if key(target) in errors or number > target.plan.rounds:
                continue
            figures = _run_phase(target, "round", work_dir, f"round {number}")
            if "error" in figures:
                errors[key(target)] = figures["error"]
            else:
                rounds[key(target)].append(figures)
    columns: dict[str, dict[str, Any]] = {}
    for target in targets:
        column: dict[str, Any] = {}
        if rounds[key(target)]:
            column.update(summarize_rounds(rounds[key(target)], target.plan))
        for phase, label, module in _later_phases(target, phases):
            if key(target) in errors:
                break
            extras = _run_phase(target, phase, work_dir, label, module)
            if "error" in extras:
                errors[key(target)] = extras["error"]
            else:
                column.update(extras)
        if key(target) in errors:
            column["error"] = errors[key(target)]
        columns[key(target)] = column
    return columns


def _later_phases(target: Target, phases: tuple[str, ...]) -> list[tuple[str, str, str | None]]:
    """The phases a column runs after the rounds: (phase, label, module or None)."""
    later: list[tuple[str, str, str | None]] = []
    if target.system != "baseline" and "extras" in phases:
        later.append(("extras", "resume and commits", None))
    if target.system == "zart" and "wake" in phases:
        later.append(("wake", "wake-ups (event, timer)", WAKE_MODULE))
    if target.system == "zart" and "sleepers" in phases and target.plan.sleepers > 0:
        later.append(("sleepers", f"{target.plan.sleepers:,} sleepers", WAKE_MODULE))
        if target.plan.sleepers_slots > 0:
            label = f"{target.plan.sleepers:,} sleepers on {target.plan.sleepers_slots:,} slots"
            later.append(("sleepers-slots", label, WAKE_MODULE))
    if target.system == "zart" and target.backend == "postgresql" and "composition" in phases:
        later.append(("composition", "children, messages, a fan-out", COMPOSITION_MODULE))
    if (
        target.system == "zart"
        and target.backend == "postgresql"
        and "scale" in phases
        and scale_rows() > 0
    ):
        later.append(("scale", f"{scale_rows():,} finished executions", SCALE_MODULE))
    return later


def scale_rows() -> int:
    from bench.scale import rows_to_load

    return rows_to_load()


def key(target: Target) -> str:
    return f"{target.system}-{target.backend}"


def _machine() -> dict[str, Any]:
    import os

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("zart", "dbos", "sqlalchemy", "asyncpg", "aiosqlite", "psycopg"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check that it runs")
    parser.add_argument("--only", default="baseline,zart,dbos", help="systems to run")
    parser.add_argument("--backends", default="postgresql,sqlite", help="backends to run")
    parser.add_argument(
        "--phases", default=",".join(PHASES), help=f"phases to run, of {','.join(PHASES)}"
    )
    parser.add_argument(
        "--sleepers",
        type=int,
        help="executions asleep at once on PostgreSQL (default 10,000; 0 skips the workload)",
    )
    parser.add_argument(
        "--sqlite-sleepers", type=int, help="the same on SQLite (default 0: skipped)"
    )
    arguments = parser.parse_args()
    systems = [s for s in arguments.only.split(",") if s]
    backends = [b for b in arguments.backends.split(",") if b]
    phases = tuple(p for p in arguments.phases.split(",") if p)
    unknown = set(phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases {sorted(unknown)}; choose from {','.join(PHASES)}")
    plans = {b: QUICK if arguments.quick else PLANS[b] for b in backends}
    sleepers = {"postgresql": arguments.sleepers, "sqlite": arguments.sqlite_sleepers}
    for backend, count in sleepers.items():
        if count is not None and backend in plans:
            plans[backend] = dataclasses.replace(plans[backend], sleepers=count)
    started = time.perf_counter()
    work_dir = Path(tempfile.mkdtemp(prefix="zart-bench-"))
    server = start_postgres(durable=True) if "postgresql" in backends else None
    try:
        if server is not None:
            server.create_database("zart_bench")
            server.create_database("dbos_bench")
            print(
                f"PostgreSQL (durable: fsync, synchronous_commit, full_page_writes on) "
                f"at {server.host}:{server.port}",
                flush=True,
            )
        targets = _targets(server, work_dir, systems, plans)
        for backend, plan in plans.items():
            print(f"plan for {backend}: {dataclasses.asdict(plan)}", flush=True)
        columns = _run_all(targets, work_dir, phases)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work_dir, ignore_errors=True)
    results = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "versions": _versions(),
        "postgresql": "throwaway server, durable settings (fsync/synchronous_commit on)",
        "plans": {b: dataclasses.asdict(plan) for b, plan in plans.items()},
        "phases": list(phases),
        "columns": columns,
        "total_seconds": time.perf_counter() - started,
    }
    results["verdicts"] = verdicts(columns)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2, sort_keys=True))
    print()
    print(render(results))
    for name, column in columns.items():
        if "scale" in column:
            from bench.scale import render as render_scale

            print(f"\n{name} {render_scale(column)}")
    print(f"\nwritten to {RESULTS / 'latest.json'} ({results['total_seconds']:.0f} s in all)")


if __name__ == "__main__":
    main()
