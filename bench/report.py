"""The table ``make bench`` prints, and the verdicts on DESIGN section 7's budgets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

BACKENDS = (("postgresql", "PG"), ("sqlite", "SQLite"))
STEPS = 10

Columns = dict[str, dict[str, Any]]


def _get(columns: Columns, column: str, *path: str) -> Any:
    node: Any = columns.get(column)
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _held_at_due(memory: dict[str, Any]) -> str:
    """``; N held ahead at due (RSS X MiB)`` when the sample exists (results since claim_ahead)."""
    sample = memory.get("held_at_due")
    if not sample or sample.get("held") is None:
        return ""
    return f"; {sample['held']:,} claimed ahead and held at due, RSS {sample['rss_mib']:.1f} MiB"


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return f"{value:,.{digits}f}"


def _ratio(top: Any, bottom: Any) -> float | None:
    if top is None or bottom is None or bottom == 0:
        return None
    return float(top) / float(bottom)


def _x(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


Row = tuple[str, list[str]]


def _pair_row(
    columns: Columns,
    label: str,
    path: tuple[str, ...],
    digits: int,
    higher_is_better: bool | None,
) -> Row:
    """A figure for Zart and DBOS on each backend, with Zart's advantage (>1: Zart better;
    none when ``higher_is_better`` is None)."""
    cells: list[str] = []
    for backend, _ in BACKENDS:
        zart = _get(columns, f"zart-{backend}", *path)
        dbos = _get(columns, f"dbos-{backend}", *path)
        if higher_is_better is None:
            advantage = ""
        else:
            advantage = _x(_ratio(zart, dbos) if higher_is_better else _ratio(dbos, zart))
        cells += [_fmt(zart, digits), _fmt(dbos, digits), advantage]
    return label, cells


def _zart_row(columns: Columns, label: str, value: Callable[[str], Any], digits: int = 0) -> Row:
    cells: list[str] = []
    for backend, _ in BACKENDS:
        cells += [_fmt(value(backend), digits), "", ""]
    return label, cells


def _both_row(columns: Columns, label: str, value: Callable[[str, str], Any]) -> Row:
    cells: list[str] = []
    for backend, _ in BACKENDS:
        cells += [_fmt(value("zart", backend)), _fmt(value("dbos", backend)), ""]
    return label, cells


def _baseline(columns: Columns, backend: str, way: str = "sqlalchemy_transaction") -> Any:
    return _get(columns, f"baseline-{backend}", "baseline", way, "us_per_insert")


def _rows(columns: Columns) -> list[Row]:
    rows: list[Row] = [
        _zart_row(
            columns, "baseline INSERT+COMMIT, SQLAlchemy txn (µs)", lambda b: _baseline(columns, b)
        ),
        _zart_row(
            columns,
            "baseline INSERT, SQLAlchemy autocommit (µs)",
            lambda b: _baseline(columns, b, "sqlalchemy_autocommit"),
        ),
        _zart_row(
            columns,
            "baseline INSERT, raw driver autocommit (µs)",
            lambda b: _baseline(columns, b, "raw_driver"),
        ),
        _pair_row(
            columns, "sequential 10-step: steps/s", ("sequential", "steps_per_second"), 0, True
        ),
        _pair_row(columns, "sequential 10-step: µs/step", ("sequential", "us_per_step"), 0, False),
        _pair_row(
            columns,
            "sequential: marginal µs/step (30 vs 10)",
            ("sequential", "marginal_us_per_step"),
            0,
            False,
        ),
        _pair_row(
            columns,
            "sequential: start→finish ms/workflow (stored)",
            ("sequential", "stored_ms_per_workflow"),
            1,
            False,
        ),
        _pair_row(
            columns,
            "sequential: marginal µs/step, no wait polling",
            ("sequential", "stored_marginal_us_per_step"),
            0,
            False,
        ),
        _both_row(
            columns,
            "  µs/step ÷ baseline txn",
            lambda s, b: _x(
                _ratio(
                    _get(columns, f"{s}-{b}", "sequential", "us_per_step"), _baseline(columns, b)
                )
            ),
        ),
        _both_row(
            columns,
            "  marginal (no wait polling) ÷ baseline txn",
            lambda s, b: _x(
                _ratio(
                    _get(columns, f"{s}-{b}", "sequential", "stored_marginal_us_per_step"),
                    _baseline(columns, b),
                )
            ),
        ),
        _pair_row(
            columns,
            "concurrent (64 in flight): steps/s",
            ("concurrent", "steps_per_second"),
            0,
            True,
        ),
        _zart_row(
            columns,
            "floor: raw INSERT+COMMIT, 64 connections (commits/s)",
            lambda b: _floor_rate(columns, b),
        ),
        _both_row(
            columns,
            "  sequential all-in ÷ (S+2) raw commits",
            lambda s, b: _x(_sequential_to_floor(columns, s, b)),
        ),
        _both_row(
            columns,
            "  concurrent steps/s ÷ 64-connection commits/s",
            lambda s, b: _x(_concurrent_to_floor(columns, s, b)),
        ),
    ]
    for workload in ("sequential", "concurrent"):
        for who, label in (("process", "this process"), ("server", "PostgreSQL server")):
            rows.append(
                _pair_row(
                    columns,
                    f"CPU µs/step, {workload}: {label}",
                    ("cpu_per_step", workload, f"{who}_us"),
                    0,
                    False,
                )
            )
    sizes = sorted({int(n) for key in columns for n in (_get(columns, key, "resume") or {})})
    for n in sizes:
        rows.append(
            _both_row(
                columns,
                f"resume N={n}: load ms (queries)",
                lambda s, b, n=n: _cell(
                    _get(columns, f"{s}-{b}", "resume", str(n), "load_ms"),
                    _get(columns, f"{s}-{b}", "resume", str(n), "load_statements"),
                ),
            )
        )
        rows.append(
            _both_row(
                columns,
                f"resume N={n}: resume ms (statements)",
                lambda s, b, n=n: _cell(
                    _get(columns, f"{s}-{b}", "resume", str(n), "resume_ms"),
                    _get(columns, f"{s}-{b}", "resume", str(n), "resume_statements"),
                ),
            )
        )
    rows += _wake_rows(columns)
    for label, mode, key, compare in (
        ("commits/workflow (xact_commit, poll 50 ms)", "polling", "xact_commit", False),
        ("rollbacks/workflow (xact_rollback)", "polling", "xact_rollback", None),
        ("write transactions/workflow (xids)", "polling", "write_transactions", False),
        ("WAL fsyncs/workflow", "polling", "wal_syncs", False),
        ("commits/workflow, worker not polling", "quiet", "xact_commit", False),
        ("write transactions/workflow, not polling", "quiet", "write_transactions", False),
    ):
        rows.append(_pair_row(columns, label, ("commits", mode, "per_workflow", key), 1, compare))
    return rows


def _wake_rows(columns: Columns) -> list[Row]:
    """Zart only (bench.wake): an idle worker woken by an event or a due timer, and N
    executions asleep at once."""
    rows: list[Row] = []
    for kind, label, key in (
        ("event", "wake by event, NOTIFY/poll → resumed", "resumed_ms"),
        ("timer", "wake by due timer: resumed - wake_at", "late_ms"),
    ):
        for stat in ("p50", "p90", "max"):
            rows.append(
                _zart_row(columns, f"{label} ms {stat}", _wake_figure(columns, kind, key, stat), 1)
            )
    counts = {_get(columns, f"zart-{b}", "sleepers", "count") for b, _ in BACKENDS} - {None}
    if not counts:
        return rows
    n = f"{max(counts):,}" if len(counts) == 1 else "N"

    def sleepers(*path: str, scale: float = 1.0, phase: str = "sleepers") -> Callable[[str], Any]:
        def value(backend: str) -> Any:
            found = _get(columns, f"zart-{backend}", phase, *path)
            return None if found is None else found * scale

        return value

    def memory(moment: str, what: str = "rss_trimmed_mib") -> Callable[[str], Any]:
        return sleepers("memory", moment, what)

    for label, value, digits in (
        (f"{n} sleepers: started, s", sleepers("start_s"), 1),
        (f"{n} sleepers: all waiting after, s", sleepers("all_waiting_after_s"), 1),
        (f"{n} sleepers: RSS MiB, before (trimmed)", memory("before"), 1),
        (f"{n} sleepers: RSS MiB, all waiting", memory("all_waiting"), 1),
        (f"{n} sleepers: RSS MiB, N/5 more waiting", memory("more_waiting"), 1),
        (f"{n} sleepers: RSS MiB, end of the wait", memory("just_before_due"), 1),
        (f"{n} sleepers: held ahead at due", memory("held_at_due", "held"), 0),
        (f"{n} sleepers: RSS MiB, held ahead at due", memory("held_at_due", "rss_mib"), 1),
        (f"{n} sleepers: RSS MiB, all finished", memory("all_finished"), 1),
        (f"{n} sleepers: RSS MiB, peak", memory("all_finished", "peak_rss_mib"), 1),
        (
            f"{n} sleepers: Python blocks Δ waiting",
            lambda b: _delta(columns, b, "python_blocks_after_gc"),
            0,
        ),
        (f"{n} sleepers: asyncio tasks waiting", memory("all_waiting", "tasks"), 0),
        (f"{n} sleepers: wake lag p50, s", sleepers("lag_ms", "p50", scale=1e-3), 2),
        (f"{n} sleepers: wake lag p90, s", sleepers("lag_ms", "p90", scale=1e-3), 2),
        (
            f"{n} sleepers: claimed (sleep done) p50, s",
            sleepers("claim_lag_ms", "p50", scale=1e-3),
            2,
        ),
        (
            f"{n} sleepers: claimed (sleep done) max, s",
            sleepers("claim_lag_ms", "max", scale=1e-3),
            2,
        ),
        (f"{n} sleepers: last resumed after due, s", sleepers("last_resumed_after_due_s"), 2),
        (f"{n} sleepers: resumed within 1 s", sleepers("within_1s"), 0),
        (f"{n} sleepers: last finished after due, s", sleepers("last_finished_after_due_s"), 1),
        (f"{n} sleepers: mean claim batch", sleepers("mean_claim_batch"), 0),
        (f"{n} sleepers: CPU µs/resume, this process", sleepers("cpu_per_resume", "process_us"), 0),
        (f"{n} sleepers: CPU µs/resume, server", sleepers("cpu_per_resume", "server_us"), 0),
        (f"{n} sleepers: worker concurrency", sleepers("concurrency"), 0),
    ):
        rows.append(_zart_row(columns, label, value, digits))
    slots = {_get(columns, f"zart-{b}", "sleepers_slots", "concurrency") for b, _ in BACKENDS}
    slots -= {None}
    if slots:
        on = f"{n} sleepers on {max(slots):,} slots" if len(slots) == 1 else f"{n} on fewer slots"
        for label, value, digits in (
            (
                f"{on}: wake lag p50, s",
                sleepers("lag_ms", "p50", scale=1e-3, phase="sleepers_slots"),
                2,
            ),
            (
                f"{on}: last resumed after due, s",
                sleepers("last_resumed_after_due_s", phase="sleepers_slots"),
                2,
            ),
            (f"{on}: resumed within 1 s", sleepers("within_1s", phase="sleepers_slots"), 0),
            (f"{on}: resumed per s", sleepers("resumed_per_s", phase="sleepers_slots"), 0),
            (
                f"{on}: CPU µs/resume, this process",
                sleepers("cpu_per_resume", "process_us", phase="sleepers_slots"),
                0,
            ),
            (
                f"{on}: CPU µs/resume, server",
                sleepers("cpu_per_resume", "server_us", phase="sleepers_slots"),
                0,
            ),
        ):
            rows.append(_zart_row(columns, label, value, digits))
    return rows


def _on_fewer_slots(columns: Columns) -> str:
    """The same crowd on a worker with fewer slots than sleepers, for the wake-up verdict."""
    crowd = _get(columns, "zart-postgresql", "sleepers_slots")
    if not crowd:
        return ""
    return (
        f"; on {crowd['concurrency']:,} slots, where each slot must finish a run before the"
        f" next sleeper resumes: {crowd['within_1s']:,} within 1 s, last"
        f" {crowd['last_resumed_after_due_s']:.2f} s, {crowd['resumed_per_s']:.0f} resumed/s"
    )


def _wake_figure(columns: Columns, kind: str, key: str, stat: str) -> Callable[[str], Any]:
    def value(backend: str) -> Any:
        return _get(columns, f"zart-{backend}", "wake", kind, key, stat)

    return value


def _delta(columns: Columns, backend: str, what: str) -> Any:
    before = _get(columns, f"zart-{backend}", "sleepers", "memory", "before", what)
    waiting = _get(columns, f"zart-{backend}", "sleepers", "memory", "all_waiting", what)
    return None if before is None or waiting is None else waiting - before


def _floor_rate(columns: Columns, backend: str) -> Any:
    """Commits per second of the raw driver on IN_FLIGHT connections (PostgreSQL)."""
    return _get(
        columns, f"baseline-{backend}", "baseline", "raw_driver_concurrent", "commits_per_second"
    )


def _sequential_to_floor(columns: Columns, system: str, backend: str) -> float | None:
    """A sequential workflow's all-in time ÷ S + 2 raw single-connection commits (its start,
    its S checkpoints and its finish, each a durable commit at the hardware's floor)."""
    per_workflow = _get(columns, f"{system}-{backend}", "sequential", "ms_per_workflow")
    commit = _baseline(columns, backend, "raw_driver")
    if per_workflow is None or commit is None:
        return None
    return _ratio(per_workflow * 1e3, (STEPS + 2) * commit)


def _concurrent_to_floor(columns: Columns, system: str, backend: str) -> float | None:
    return _ratio(
        _get(columns, f"{system}-{backend}", "concurrent", "steps_per_second"),
        _floor_rate(columns, backend),
    )


def _cell(milliseconds: Any, queries: Any) -> str:
    count = "?" if queries is None else str(queries)
    if milliseconds is None:
        return "—" if queries is None else f"n/a ({count})"
    return f"{milliseconds:,.1f} ({count})"


def render(results: dict[str, Any]) -> str:
    columns: Columns = results["columns"]
    header = ["", "Zart-PG", "DBOS-PG", "Zart adv.", "Zart-SQLite", "DBOS-SQLite", "Zart adv."]
    rows = _rows(columns)
    width = max(len(label) for label, _ in rows) + 1
    lines = [
        f"{header[0]:<{width}}" + "".join(f"{h:>13}" for h in header[1:]),
    ]
    lines.append("-" * len(lines[0]))
    for label, cells in rows:
        lines.append(f"{label:<{width}}" + "".join(f"{c:>13}" for c in cells))
    lines.append("")
    lines.append("Zart adv. = Zart's throughput ÷ DBOS's (for times: DBOS's ÷ Zart's): >1 means")
    lines.append("Zart is better. Plans (N of each workload):")
    for backend, plan in results.get("plans", {}).items():
        lines.append(f"  {backend}: {plan}")
    for key, column in columns.items():
        if "error" in column:
            lines.append(f"{key}: FAILED ({column['error']})")
    lines.append("")
    lines.append("DESIGN §7 budgets:")
    for verdict in results.get("verdicts", []):
        lines.append(f"  [{verdict['verdict']}] {verdict['budget']}: {verdict['measured']}")
    return "\n".join(lines)


def _verdict(budget: str, ok: bool | None, measured: str) -> dict[str, str]:
    verdict = "n/a" if ok is None else ("PASS" if ok else "MISS")
    return {"budget": budget, "verdict": verdict, "measured": measured}


def verdicts(columns: Columns) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    quiet = _get(columns, "zart-postgresql", "commits", "quiet", "per_workflow")
    polling = _get(columns, "zart-postgresql", "commits", "polling", "per_workflow")
    if quiet is not None and polling is not None:
        writes = quiet["write_transactions"]
        found.append(
            _verdict(
                f"at most S+3 = {STEPS + 3} commits per {STEPS}-step workflow",
                round(writes) <= STEPS + 3,
                f"{writes:.1f} write transactions (WAL-flushing commits) per workflow"
                f" (S+2 = {STEPS + 2} when the start hands the execution to its in-process"
                f" worker, which needs no claim); xact_commit {quiet['xact_commit']:.1f} with"
                f" a non-polling worker and {polling['xact_commit']:.1f} with"
                " poll_interval=0.05 s: the rest are read-only transactions (polls)",
            )
        )
    resume = _get(columns, "zart-postgresql", "resume") or _get(columns, "zart-sqlite", "resume")
    if resume:
        loads = {n: r["load_statements"] for n, r in resume.items()}
        totals = {n: r["resume_statements"] for n, r in resume.items()}
        times = ", ".join(f"N={n}: {r['resume_ms']:.1f} ms" for n, r in resume.items())
        found.append(
            _verdict(
                "resuming N recorded steps costs one query, whatever N",
                set(loads.values()) == {1} and len(set(totals.values())) == 1,
                f"load queries {loads}; statements for claim+replay+1 step+finish {totals};"
                f" {times}",
            )
        )
    for workload in ("sequential", "concurrent"):
        zart = _get(columns, "zart-postgresql", workload, "steps_per_second")
        dbos = _get(columns, "dbos-postgresql", workload, "steps_per_second")
        ratio = _ratio(zart, dbos)
        found.append(
            _verdict(
                f"≥5x DBOS step throughput on PostgreSQL, {workload}",
                None if ratio is None else ratio >= 5,
                f"{_fmt(zart)} vs {_fmt(dbos)} steps/s = {_x(ratio)}",
            )
        )
    for workload in ("sequential", "concurrent"):
        zart = _get(columns, "zart-sqlite", workload, "steps_per_second")
        dbos = _get(columns, "dbos-sqlite", workload, "steps_per_second")
        ratio = _ratio(zart, dbos)
        found.append(
            _verdict(
                f"ahead of DBOS on SQLite, {workload}",
                None if ratio is None else ratio > 1,
                f"{_fmt(zart)} vs {_fmt(dbos)} steps/s = {_x(ratio)}",
            )
        )
    found += _wake_verdicts(columns)
    found += _composition_verdicts(columns)
    found += _margin_verdicts(columns)
    for backend, name in BACKENDS:
        base = _baseline(columns, backend)
        step = _get(columns, f"zart-{backend}", "sequential", "us_per_step")
        marginal = _get(columns, f"zart-{backend}", "sequential", "stored_marginal_us_per_step")
        ratio = _ratio(marginal, base)
        found.append(
            _verdict(
                f"step overhead within 1.5x of a bare INSERT+COMMIT ({name})",
                None if ratio is None else ratio <= 1.5,
                f"marginal step (stored start/finish times) {_fmt(marginal)} µs"
                f" vs {_fmt(base)} µs = {_x(ratio)}"
                f" (all-in µs/step incl. start/claim/finish/wait: {_fmt(step)} ="
                f" {_x(_ratio(step, base))})",
            )
        )
    return found


def _composition_verdicts(columns: Columns) -> list[dict[str, str]]:
    """Issue 19: a child's start-to-result and a message's delivery within 2x the event
    wake-up (p50, PostgreSQL, the same run), and a 1,000-child fan-out's throughput."""
    found = _get(columns, "zart-postgresql", "composition")
    if not found:
        return []
    event = found["event_resumed_p50_ms"]
    fan = found["fan_out"]
    verdicts = [
        _verdict(
            f"{what} within 2x the event wake-up (p50, PostgreSQL, idle worker)",
            found[ratio] <= 2,
            f"p50 {found[key]:.1f} ms vs the event's {event:.1f} ms = {found[ratio]:.2f}x",
        )
        for what, key, ratio in (
            ("child start-to-result", "child_start_to_result_p50_ms", "child_over_event"),
            ("message delivery", "message_resumed_p50_ms", "message_over_event"),
        )
    ]
    verdicts.append(
        _verdict(
            f"{fan['children']:,}-child fan-out (one parent, start_child + gather)",
            None,
            f"{fan['children_per_second']:.0f} children/s ({fan['seconds']:.1f} s)",
        )
    )
    return verdicts


def _wake_verdicts(columns: Columns) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    for kind, what, key in (
        ("event", "an event", "resumed_ms"),
        ("timer", "a due timer", "late_ms"),
    ):
        figures = _get(columns, "zart-postgresql", "wake", kind, key)
        sqlite = _get(columns, "zart-sqlite", "wake", kind, key)
        if figures is None:
            continue
        path = (
            "offer_event from a second scheduler → NOTIFY → listener → claim → handler"
            if kind == "event"
            else "the idle worker sleeps until the next claimable_at, then claims"
        )
        reference = (
            ""
            if sqlite is None
            else f"; SQLite (workers poll every 0.5 s): p50 {sqlite['p50']:.1f} ms,"
            f" max {sqlite['max']:.1f} ms"
        )
        found.append(
            _verdict(
                f"resumed within 50 ms p50 by {what} (PostgreSQL, idle worker)",
                figures["p50"] <= 50,
                f"p50 {figures['p50']:.1f} ms, p90 {figures['p90']:.1f} ms, max"
                f" {figures['max']:.1f} ms over {figures['count']} ({path}){reference}",
            )
        )
    sleepers = _get(columns, "zart-postgresql", "sleepers")
    if not sleepers:
        return found
    count = sleepers["count"]
    memory = sleepers["memory"]
    before, waiting = memory["before"], memory["all_waiting"]
    more, extra = memory["more_waiting"], sleepers["more_sleepers"]
    wait_samples = [more, *memory["during_wait"], memory["just_before_due"]]
    rss = [m["rss_trimmed_mib"] or m["rss_mib"] for m in wait_samples]
    blocks = waiting["python_blocks_after_gc"] - before["python_blocks_after_gc"]
    more_blocks = more["python_blocks_after_gc"] - waiting["python_blocks_after_gc"]
    # A sleeper held in the worker would be a run's task ("zart-execution-<id>") or a slot;
    # the total task count also moves by the transient tasks of the loops' own waits.
    if "task_names" in waiting:
        runs_held = max(
            sum(1 for name in m["task_names"] if name.startswith("zart-execution-"))
            for m in (waiting, *wait_samples)
        )
    else:  # results from before the names were recorded: the total count's growth
        runs_held = max(0, waiting["tasks"] - before["tasks"])
    held = (
        runs_held,
        max((m["in_flight"] or 0) + (m.get("held") or 0) for m in (waiting, *wait_samples)),
    )
    grew = (more["rss_trimmed_mib"] or more["rss_mib"]) - (
        waiting["rss_trimmed_mib"] or waiting["rss_mib"]
    )
    # Flat: the trimmed RSS moves by under 1 MiB through the wait and with N/5 more sleepers;
    # those add under one Python object per two sleepers (anything a worker kept per sleeper
    # is at least one each; the allocator's and the libraries' caches move the count by a few
    # hundred from run to run either way); and no run's task or slot is held for a sleeper.
    flat = (
        max(rss) - min(rss) <= 1.0
        and grew <= 1.0
        and more_blocks < max(extra, 1) / 2
        and held == (0, 0)
    )
    after = memory["all_finished"]
    found.append(
        _verdict(
            f"{count:,} sleepers: memory flat while they wait",
            flat,
            f"RSS (trimmed) {min(rss):.1f}-{max(rss):.1f} MiB over the {len(rss)} samples of"
            f" the wait; {extra:,} more sleepers: {grew:+.1f} MiB and {more_blocks:+,} Python"
            f" blocks; {held[0]} runs' tasks and {held[1]} executions in flight or held while"
            f" waiting ({waiting['tasks'] - before['tasks']:+} asyncio tasks in all)."
            f" {before['rss_trimmed_mib']:.1f} MiB before (after a warm-up of"
            f" {sleepers['pilot']['count']:,}, left asleep), {waiting['rss_trimmed_mib']:.1f}"
            f" all waiting ({blocks:+,} Python blocks), {after['rss_trimmed_mib']:.1f} all"
            f" finished, peak {after['peak_rss_mib']:.1f}: the first rise is the allocator's"
            f" high-water mark of the start/suspend burst (up to {sleepers['concurrency']:,} in"
            " flight), not held objects",
        )
    )
    lag = sleepers["lag_ms"]
    in_time = sleepers["slack_s"] >= 0  # all were asleep before due
    found.append(
        _verdict(
            f"{count:,} sleepers: all woke within 1 s of their due time",
            (lag["max"] <= 1000.0 and lag["count"] == count) if in_time else None,
            f"{sleepers['within_1s']:,} of {count:,} resumed within 1 s; lag p50"
            f" {lag['p50'] / 1e3:.2f} s, p90 {lag['p90'] / 1e3:.2f} s, last"
            f" {lag['max'] / 1e3:.2f} s, all finished {sleepers['last_finished_after_due_s']:.1f}"
            f" s after due ({sleepers['resumed_per_s']:.0f} resumed/s; worker concurrency"
            f" {sleepers['concurrency']:,}, mean claim batch"
            f" {_fmt(sleepers.get('mean_claim_batch'))}{_held_at_due(memory)})"
            + _on_fewer_slots(columns)
            + ("" if in_time else "; NOT all were asleep when due came: no verdict"),
        )
    )
    return found


def _margin_verdicts(columns: Columns) -> list[dict[str, str]]:
    """The budgets with headroom (issue #22), measured against the floor of the same rounds."""
    found: list[dict[str, str]] = []
    zart = _get(columns, "zart-postgresql", "sequential", "steps_per_second")
    dbos = _get(columns, "dbos-postgresql", "sequential", "steps_per_second")
    ratio = _ratio(zart, dbos)
    found.append(
        _verdict(
            "with margin: ≥7x DBOS step throughput on PostgreSQL, sequential",
            None if ratio is None else ratio >= 7,
            f"{_fmt(zart)} vs {_fmt(dbos)} steps/s = {_x(ratio)}",
        )
    )
    floor = _sequential_to_floor(columns, "zart", "postgresql")
    commit = _baseline(columns, "postgresql", "raw_driver")
    per_workflow = _get(columns, "zart-postgresql", "sequential", "ms_per_workflow")
    found.append(
        _verdict(
            f"all-in sequential ≤1.6x the (S+2)-commit floor (PostgreSQL, S={STEPS})",
            None if floor is None else floor <= 1.6,
            f"{_fmt(per_workflow, 2)} ms per workflow vs {STEPS + 2} x {_fmt(commit)} µs raw"
            f" commits = {_x(floor)}",
        )
    )
    concurrent = _concurrent_to_floor(columns, "zart", "postgresql")
    zart_c = _get(columns, "zart-postgresql", "concurrent", "steps_per_second")
    dbos_c = _get(columns, "dbos-postgresql", "concurrent", "steps_per_second")
    against_dbos = _ratio(zart_c, dbos_c)
    found.append(
        _verdict(
            "concurrent ≥0.5x the 64-connection raw commit rate and ≥25x DBOS (PostgreSQL)",
            None
            if concurrent is None or against_dbos is None
            else concurrent >= 0.5 and against_dbos >= 25,
            f"{_fmt(zart_c)} steps/s vs {_fmt(_floor_rate(columns, 'postgresql'))} commits/s"
            f" = {_x(concurrent)}; vs DBOS {_fmt(dbos_c)} = {_x(against_dbos)}",
        )
    )
    crowd = _get(columns, "zart-postgresql", "sleepers_slots")
    if crowd:
        lag = crowd["lag_ms"]
        found.append(
            _verdict(
                f"{crowd['count']:,} sleepers on {crowd['concurrency']:,} slots: all resumed"
                " within 1 s",
                lag["max"] <= 1000.0 and lag["count"] == crowd["count"],
                f"{crowd['within_1s']:,} within 1 s, last {crowd['last_resumed_after_due_s']:.2f}"
                f" s, {crowd['resumed_per_s']:.0f} resumed/s",
            )
        )
    return found
