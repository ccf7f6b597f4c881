"""Durable payments/s through the bridge, against the bare SQLite commit rate of its disk.

    .venv/bin/python -m bench.payments [--levels 1,16,64] [--duration 10] [--warmup 2]

(a) **Bare commits/s**: sequential one-row ``INSERT`` + ``COMMIT`` on a fresh SQLite file (WAL,
    ``synchronous=FULL``) in the folder the bridge's database will use, before and after (b);
    the ratio uses the higher (another tenant's fsyncs only ever lower it).
(b) **Durable payments/s**: ``python -m bridge serve`` as a subprocess (one process, the
    in-memory simulator, 999 tables), one location per concurrency level (fresh bills), and
    ``bench/loadgen.py`` in its own process POSTing 1-minor-unit payments round-robin over the
    tables, each fsynced before its 2xx.

Target: payments/s ≥ 0.5 × bare commits/s at the best level. The machine is shared:
compare ratios from one run, not figures across runs.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    REPO,
    SECRET,
    TABLES,
    Server,
    bridge_config,
    commit,
    cpu_seconds,
    fmt,
    machine_jiffies,
    others_pct,
    run_generator,
    write_results,
)

TARGET_RATIO = 0.5


def bare_commits_per_s(folder: Path, commits: int, max_seconds: float) -> float:
    path = folder / f"bare-{time.monotonic_ns()}.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payment_id TEXT, body TEXT)")
        started = time.perf_counter()
        done = 0
        while done < commits and time.perf_counter() - started < max_seconds:
            conn.execute("BEGIN")
            conn.execute("INSERT INTO t (payment_id, body) VALUES (?, ?)", (f"p-{done}", "x" * 120))
            conn.execute("COMMIT")
            done += 1
        return done / (time.perf_counter() - started)
    finally:
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def run_level(bridge: Server, location: str, concurrency: int, args: argparse.Namespace) -> dict:
    job = {
        "kind": "payments",
        "port": bridge.port,
        "location": location,
        "secret": SECRET,
        "tables": TABLES,
        "concurrency": concurrency,
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "id_prefix": f"{location}-{time.time_ns()}",
    }

    def snapshot() -> dict[str, Any]:
        return {
            "wall": time.perf_counter(),
            "cpu": cpu_seconds(bridge.pid),
            "machine": machine_jiffies(),
        }

    timeout = 120 + args.warmup + args.duration
    result, start, end = run_generator(job, timeout, snapshot)
    wall = end["wall"] - start["wall"]
    result["bridge_cpu_pct"] = round(100 * (end["cpu"] - start["cpu"]) / wall, 1)
    ours = result["bridge_cpu_pct"] + result["client_cpu_pct"]
    result["others_cpu_pct"] = others_pct(start["machine"], end["machine"], ours)
    return result


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"`bench.payments` at commit {report['commit']}: bare SQLite"
        f" **{report['bare_commits_per_s']:,.0f} commits/s**.",
        "",
        "| concurrency | payments/s | p50 ms | p99 ms | ÷ bare commits/s | bridge CPU % "
        "| others % | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["levels"]:
        lines.append(
            f"| {r['concurrency']} | {r['per_s']:,.0f} | {fmt(r['p50_ms'], '.1f')}"
            f" | {fmt(r['p99_ms'], '.1f')} | {r['ratio']:.3f} | {r['bridge_cpu_pct']:.0f}"
            f" | {r['others_cpu_pct']:.0f} | {r['errors']} |"
        )
    best = max(report["levels"], key=lambda r: r["ratio"])
    verdict = "met" if best["ratio"] >= TARGET_RATIO else "**not met**"
    lines += [
        "",
        f"Target ≥ {TARGET_RATIO} × bare commits/s at the best level: {best['ratio']:.3f}"
        f" at concurrency {best['concurrency']}, {verdict}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.payments", description=__doc__.split("\n")[0])
    parser.add_argument("--levels", default="1,16,64", help="concurrency levels")
    parser.add_argument("--duration", type=float, default=10.0, help="counted s per level")
    parser.add_argument("--warmup", type=float, default=2.0, help="uncounted s per level")
    parser.add_argument("--commits", type=int, default=2000, help="bare commits, at most")
    parser.add_argument("--bare-seconds", type=float, default=5.0, help="bare run, at most")
    parser.add_argument(
        "--data-root",
        type=Path,
        default=REPO / "bench" / "results",
        help="where the data folder goes: put it on the disk the bridge will use",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    args.data_root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="payments-", dir=args.data_root))
    (folder / "data").mkdir()
    locations = [f"bench-{i}-c{c}" for i, c in enumerate(levels)]
    bridge = Server("bridge", "serve", bridge_config(folder, locations))
    try:
        before = bare_commits_per_s(folder / "data", args.commits, args.bare_seconds)
        print(f"(a) bare commits/s: {before:.0f}")
        bridge.start()
        print(f"(b) bridge pid {bridge.pid} on 127.0.0.1:{bridge.port}")
        results = []
        for location, concurrency in zip(locations, levels, strict=True):
            r = run_level(bridge, location, concurrency, args)
            results.append(r)
            print(
                f"    concurrency {concurrency:>4}: {r['per_s']:.0f} payments/s, p50"
                f" {fmt(r['p50_ms'])} ms, p99 {fmt(r['p99_ms'])} ms, errors {r['errors']}"
                f"{''.join(' ' + e for e in r['error_samples'][:1])},"
                f" bridge CPU {r['bridge_cpu_pct']:.0f} %,"
                f" others {r['others_cpu_pct']:.0f} %"
            )
        bridge.stop()
        after = bare_commits_per_s(folder / "data", args.commits, args.bare_seconds)
        print(f"(a) bare commits/s again: {after:.0f}")
    finally:
        bridge.stop()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    bare = max(before, after)
    for r in results:
        r["ratio"] = r["per_s"] / bare
    report = {"commit": commit(), "bare_commits_per_s": bare, "bare": [before, after]}
    report |= {"settings": vars(args) | {"data_root": str(args.data_root)}, "levels": results}
    print("\n" + markdown(report) + "\n")
    write_results(report, "payments")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
