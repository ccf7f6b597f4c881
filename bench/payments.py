"""Durable payment throughput of the bridge, against the bare SQLite commit rate of its disk.

Run it from the repository root, either way (the bench itself needs only the standard
library; the bridge it starts runs under ``.venv/bin/python`` when that exists)::

    .venv/bin/python -m bench.payments            # as a module
    python bench/payments.py                      # as a script (any Python 3.11+)
    .venv/bin/python -m bench.payments --levels 1,16,64 --duration 10 --warmup 2

One run (about a minute with the defaults; every loop is bounded in count or time):

(a) **Bare commits/s**: a fresh SQLite file in the folder the bridge's database will use
    (WAL, ``synchronous=FULL``), sequential single-row ``INSERT`` + ``COMMIT`` for ``--commits``
    commits or ``--bare-seconds``, whichever ends first. Measured before and after (b); the
    ratio uses the higher of the two (the conservative choice: another tenant's fsyncs only
    ever lower it), and both are reported.
(b) **Durable payments/s** through the real bridge over HTTP on 127.0.0.1: the bridge runs as
    a subprocess (``python -m bench.serve_counted --config …``, which is ``python -m bridge
    serve --config …`` plus group-commit counters; ``--plain-bridge`` runs the latter as is),
    with the in-memory simulator POS (``tables = 999``). Each concurrency level gets its own
    location (999 fresh bills), so levels do not inherit each other's longer bills. A load
    generator (``bench/loadgen.py``) in its own process fetches every bill once, then POSTs
    1-minor-unit payments round-robin over the tables, each with a new ``paymentId`` and the
    bill's id and version as fetched: ``--warmup`` seconds uncounted, ``--duration`` counted.
    Only 201/202 count as payments; any other status is reported as an error.

Printed: a table per level (payments/s, latency p50/p99, ratio to bare commits/s, commits
and durable writes per payment, mean group-commit batch, CPU of the bridge's event-loop
thread, its other threads, the load generator and the whole machine), a markdown snippet for
README, and the results as JSON in ``bench/results/payments-<timestamp>.json`` (git-ignored).

The target (issue): payments/s ≥ 0.5 × bare commits/s at the best level. The machine is small
and shared, so compare ratios from the same run, not absolute figures across runs.

This module is (a), (b) and the run; the bridge subprocess and its config are in
``bench/bridge_process.py``, the level's figures, the table and the snippet in ``bench/report.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a script: make ``bench`` importable for the helpers
    sys.path.insert(0, str(REPO))

from bench.bridge_process import (  # noqa: E402  (after the sys.path fix for script runs)
    SECRET,
    TABLES,
    Bridge,
    bridge_python,
    code_version,
    level_location,
    machine_cpu,
    mount_of,
    write_config,
)
from bench.common import run_generator, write_results  # noqa: E402
from bench.report import (  # noqa: E402
    NOISY_OTHERS_PCT,
    TARGET_RATIO,
    fmt,
    markdown,
    print_table,
    summarise,
)

# -- (a) bare SQLite ---------------------------------------------------------------------------


def bare_commit_rate(folder: Path, commits: int, max_seconds: float) -> dict[str, Any]:
    """Sequential single-row INSERT + COMMIT on a fresh WAL, synchronous=FULL file."""
    path = folder / f"bare-{time.monotonic_ns()}.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payment_id TEXT, body TEXT)")
        row = "x" * 120  # about a payment row's size
        latencies: list[int] = []
        cpu_started = time.process_time()
        started = time.perf_counter()
        deadline = started + max_seconds
        for i in range(commits):
            t0 = time.perf_counter_ns()
            conn.execute("BEGIN")
            conn.execute("INSERT INTO t (payment_id, body) VALUES (?, ?)", (f"p-{i}", row))
            conn.execute("COMMIT")
            latencies.append(time.perf_counter_ns() - t0)
            if time.perf_counter() >= deadline:
                break
        elapsed = time.perf_counter() - started
        cpu_s = time.process_time() - cpu_started
    finally:
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    latencies.sort()
    n = len(latencies)
    return {
        "commits": n,
        "seconds": round(elapsed, 4),
        "commits_per_s": n / elapsed,
        "cpu_us_per_commit": 1e6 * cpu_s / n,
        "commit_ms": {
            "p50": latencies[n // 2] / 1e6,
            "p99": latencies[min(n - 1, int(0.99 * n))] / 1e6,
        },
    }


# -- (b) one concurrency level ---------------------------------------------------------------


Hook = Callable[[], None]


def run_level(
    bridge: Bridge,
    location: str,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    run_id: str,
    on_start: Hook | None = None,
    on_end: Hook | None = None,
) -> dict[str, Any]:
    """Drive ``location`` at ``concurrency`` and measure the counted window."""
    job = {
        "port": bridge.port,
        "location": location,
        "secret": SECRET,
        "tables": TABLES,
        "concurrency": concurrency,
        "warmup_s": warmup_s,
        "duration_s": duration_s,
        "amount": 1,
        "id_prefix": f"{run_id}-c{concurrency}",
    }

    def snapshot(name: str) -> dict[str, Any]:
        if name == "end" and on_end is not None:
            on_end()
        snap = {
            "wall": time.perf_counter(),
            "cpu": bridge.cpu(),
            "machine": machine_cpu(),
            "counters": bridge.counters(),
        }
        if name == "start" and on_start is not None:
            on_start()
        return snap

    timeout_s = 120 + warmup_s + duration_s + 30
    result, snaps, returncode = run_generator("bench.loadgen", job, timeout_s, snapshot)
    if result is None or "start" not in snaps or "end" not in snaps:
        raise RuntimeError(
            f"load generator failed (exit {returncode}); bridge log:\n{bridge.log_tail()}"
        )
    return summarise(result, snaps["start"], snaps["end"])


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.payments", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--levels", default="1,16,64", help="concurrency levels (default 1,16,64)")
    parser.add_argument("--duration", type=float, default=10.0, help="counted s per level")
    parser.add_argument("--warmup", type=float, default=2.0, help="uncounted s per level")
    parser.add_argument("--commits", type=int, default=2000, help="bare commits (each run)")
    parser.add_argument("--bare-seconds", type=float, default=5.0, help="bare run time cap")
    parser.add_argument(
        "--data-root",
        type=Path,
        default=REPO / "bench" / "results",
        help="where the temporary data folder goes (default bench/results, git-ignored);"
        " put it on the disk the bridge will use in production",
    )
    parser.add_argument("--python", default=None, help="interpreter for the bridge")
    parser.add_argument("--plain-bridge", action="store_true", help="run `-m bridge serve` as is")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="the bridge's [server] workers: HTTP worker processes (default 1: one per spare"
        " core of this 2-core machine; 0 serves HTTP in the owner itself)",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="experiment: sys.setswitchinterval in the bridge (CPython default 0.005)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    parser.add_argument("--no-write", action="store_true", help="do not write the JSON file")
    args = parser.parse_args(argv)
    args.levels = [int(x) for x in args.levels.split(",") if x.strip()]
    if not args.levels or min(args.levels) < 1 or max(args.levels) > 1024:
        parser.error("--levels: integers from 1 to 1024")
    if not 0 < args.duration <= 120 or not 0 <= args.warmup <= 60:
        parser.error("--duration must be in (0, 120] and --warmup in [0, 60]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.data_root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="payments-", dir=args.data_root))
    run_id = time.strftime("%Y%m%d-%H%M%S")
    (folder / "data").mkdir()
    report: dict[str, Any] = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(terse=True),
            "python_bench": platform.python_version(),
            "sqlite_version": sqlite3.sqlite_version,
            "filesystem": mount_of(folder),
            "data_folder": str(folder / "data"),
        },
        "code": code_version(),
        "settings": {
            "levels": args.levels,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "tables": TABLES,
            "amount_minor": 1,
            "bridge": "plain" if args.plain_bridge else "serve_counted",
            "switch_interval_s": args.switch_interval,
            "workers": args.workers,
        },
    }
    bridge: Bridge | None = None
    started = time.perf_counter()
    try:
        print(f"data folder: {folder / 'data'} ({report['machine']['filesystem']['fstype']})")
        before = bare_commit_rate(folder / "data", args.commits, args.bare_seconds)
        print(f"(a) bare commits/s: {before['commits_per_s']:.0f}")
        locations = [level_location(c, i) for i, c in enumerate(args.levels)]
        config = write_config(folder, locations, workers=args.workers)
        bridge = Bridge(
            bridge_python(args.python),
            config,
            folder,
            args.plain_bridge,
            args.switch_interval,
        )
        bridge.start()
        print(f"(b) bridge pid {bridge.pid} on 127.0.0.1:{bridge.port}")
        levels = []
        for location, concurrency in zip(locations, args.levels, strict=True):
            level = run_level(bridge, location, concurrency, args.warmup, args.duration, run_id)
            levels.append(level)
            gc = level.get("group_commit") or {}
            print(
                f"    concurrency {concurrency:>4}: {level['payments_per_s']:.0f} payments/s,"
                f" p50 {fmt(level['latency_ms']['p50'], '.2f')} ms,"
                f" p99 {fmt(level['latency_ms']['p99'], '.2f')} ms,"
                f" errors {level['errors']}, mean batch {fmt(gc.get('mean_batch'), '.1f')}"
            )
        bridge.stop()
        after = bare_commit_rate(folder / "data", args.commits, args.bare_seconds)
        print(f"(a) bare commits/s again: {after['commits_per_s']:.0f}")
    finally:
        if bridge is not None:
            bridge.stop()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    bare_rate = max(before["commits_per_s"], after["commits_per_s"])
    report["bare"] = {"before": before, "after": after, "commits_per_s": bare_rate}
    for level in levels:
        level["ratio"] = level["payments_per_s"] / bare_rate
    best = max(levels, key=lambda level: level["payments_per_s"])
    report["levels"] = levels
    report["best"] = {
        "concurrency": best["concurrency"],
        "payments_per_s": best["payments_per_s"],
        "ratio": best["ratio"],
        "target_ratio": TARGET_RATIO,
        "target_met": best["ratio"] >= TARGET_RATIO,
    }
    report["run_seconds"] = round(time.perf_counter() - started, 1)
    others = [level.get("others_cpu_pct") or 0.0 for level in levels]
    report["noisy"] = max(others) > NOISY_OTHERS_PCT
    print_table(report)
    snippet = markdown(report)
    print("\n--- markdown for README ---\n" + snippet + "\n---")
    if not args.no_write:
        write_results(report, f"payments-{run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
