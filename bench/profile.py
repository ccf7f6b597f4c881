"""Where the bridge's CPU goes per durable payment: py-spy and cProfile under load.

    .venv/bin/pip install py-spy                      # once, for the sampling profile
    .venv/bin/python -m bench.profile                 # or: python bench/profile.py
    .venv/bin/python -m bench.profile --concurrency 64 --duration 10 --native

Starts the bridge exactly as ``bench/payments.py`` does (``bench.serve_counted``, in-memory
simulator with 999 tables), then drives two fresh locations with the same load generator:

1. **py-spy** (``py-spy record --pid … --format raw --threads``, non-blocking unless
   ``--native``) samples the bridge during the counted window. Only samples of a thread that is
   running are kept (``--gil``: only those holding the GIL), so samples ÷ rate = CPU seconds.
   Printed per thread (event loop, SQLite worker): CPU share, µs per payment, the time by
   module of the innermost known frame (aiohttp, asyncio, json, the simulator, …), and the
   top functions by self and by inclusive time.
2. **cProfile** on the event-loop thread only (toggled by ``SIGUSR2`` in ``serve_counted``)
   for exact call counts per payment; its times are inflated by its own overhead, so the
   shares come from py-spy.

``bench/relay_profile.py`` and ``bench/uplink_profile.py`` reuse its py-spy runner
(:class:`PySpy`), :func:`collect_cprofile` and the summaries, with their own buckets.

Raw files go to ``bench/results/profile-<timestamp>-*`` (git-ignored). Loopback only; every
loop and every child process is bounded in time.
"""

from __future__ import annotations

import argparse
import io
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO))

from bench.bridge_process import (  # noqa: E402  (after the sys.path fix for script runs)
    Bridge,
    bridge_python,
    level_location,
    write_config,
)
from bench.common import RESULTS, write_results  # noqa: E402
from bench.payments import run_level  # noqa: E402
from bench.report import fmt  # noqa: E402

Buckets = list[tuple[str, re.Pattern[str]]]


def compile_buckets(pairs: list[tuple[str, str]]) -> Buckets:
    """(bucket, regex on "function (file:line)") pairs, compiled; the innermost frame of a
    sample that matches one names its bucket, the first that matches winning."""
    return [(name, re.compile(pattern)) for name, pattern in pairs]


#: The bridge's buckets.
BUCKETS = compile_buckets(
    [
        ("json (stdlib encode/decode)", r"\(json/"),
        ("dataclasses (asdict/replace)", r"\(dataclasses\.py"),
        ("datetime/strptime/strftime", r"\((_strptime|datetime)\.py"),
        ("hashlib/hmac", r"\((hashlib|hmac)\.py"),
        ("logging", r"\(logging/"),
        ("simulator driver (its SQLite + bill JSON)", r"\(drivers/simulator/"),
        ("bridge store (SQL, row mapping)", r"\(bridge/store/payments"),
        ("bridge Database (group commit, executor)", r"\(bridge/store/database"),
        ("bridge core (bill, payment, rules, money)", r"\(bridge/core/"),
        ("bridge services (payments, locks, health)", r"\(bridge/services/"),
        ("bridge HTTP edge (routes, contract, auth, fields)", r"\(bridge/(platforms|http)/"),
        ("aiohttp response (json_response, writer)", r"\(aiohttp/(web_response|http_writer)"),
        ("aiohttp request (protocol, parser, request)", r"\(aiohttp/"),
        ("executor hop (futures, threading, queue)", r"\((concurrent/|threading|queue)"),
        ("asyncio event loop", r"\(asyncio/"),
        ("apscheduler", r"\(apscheduler/"),
    ]
)
_LINE = re.compile(r":\d+\)$")


def thread_role(thread: str, frames: list[str]) -> str:
    """Which of the bridge's threads a sample is from, by thread name (``--threads``)."""
    name = thread.split(":", 1)[-1].strip()
    if name == "MainThread":
        return "event loop (MainThread)"
    if name.startswith("sqlite"):
        return f"SQLite worker ({name})"
    if name:
        return name
    return "SQLite worker" if any("_run_batch" in f for f in frames) else "event loop"


def summarise_raw(
    path: Path,
    rate: int,
    payments: int,
    seconds: float,
    buckets: Buckets = BUCKETS,
) -> dict[str, Any]:
    """Per thread: CPU share, per-payment µs (per unit of ``payments``: ``bench.relay_profile``
    passes requests), ``buckets``, top self and inclusive functions."""
    threads: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"samples": 0, "self": Counter(), "incl": Counter(), "buckets": Counter()}
    )
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f]
        if frames and frames[0].startswith("process "):
            frames = frames[1:]
        thread = ""
        if frames and frames[0].startswith("thread "):
            thread, frames = frames[0], frames[1:]
        if not frames:
            frames = ["(no Python frame)"]
        role = thread_role(thread, frames)
        keys = [_LINE.sub(")", f) for f in frames]
        entry = threads[role]
        entry["samples"] += count
        entry["self"][keys[-1]] += count
        for key in set(keys):
            entry["incl"][key] += count
        bucket = "other (interpreter, C calls of a frame above)"
        for frame in reversed(frames):
            match = next((name for name, rx in buckets if rx.search(frame)), None)
            if match:
                bucket = match
                break
        entry["buckets"][bucket] += count
    out: dict[str, Any] = {}
    for role, entry in threads.items():
        total = entry["samples"]

        def rows(counter: Counter[str], n: int, total: int = total) -> list[dict[str, Any]]:
            return [
                {
                    "name": name,
                    "pct": 100 * c / total,
                    "us_per_payment": 1e6 * c / rate / payments if payments else None,
                }
                for name, c in counter.most_common(n)
            ]

        out[role] = {
            "samples": total,
            "cpu_pct_of_core": 100 * total / rate / seconds,
            "us_per_payment": 1e6 * total / rate / payments if payments else None,
            "buckets": rows(entry["buckets"], 30),
            "top_self": rows(entry["self"], 25),
            "top_inclusive": rows(entry["incl"], 40),
        }
    return out


def print_pyspy(summary: dict[str, Any], unit: str = "payment") -> None:
    for role in sorted(summary, key=lambda r: -summary[r]["samples"]):
        s = summary[role]
        print(
            f"\n== py-spy: {role}: {s['cpu_pct_of_core']:.0f}% of a core,"
            f" {fmt(s['us_per_payment'], '.0f')} us CPU per {unit} ({s['samples']} samples)"
        )
        print("  by module of the innermost known frame:")
        for row in s["buckets"]:
            print(f"    {row['pct']:5.1f}%  {fmt(row['us_per_payment'], '6.0f')} us  {row['name']}")
        print("  top self time:")
        for row in s["top_self"][:15]:
            print(f"    {row['pct']:5.1f}%  {row['name']}")
        print("  top inclusive time:")
        for row in s["top_inclusive"][:30]:
            print(f"    {row['pct']:5.1f}%  {row['name']}")


def summarise_cprofile(path: Path, payments: int, limit: int = 30, unit: str = "payment") -> str:
    stats = pstats.Stats(str(path), stream=io.StringIO())
    lines = [f"cProfile (event-loop thread), per {unit} ({payments} {unit}s):"]
    lines.append(f"{'calls/op':>10} {'tottime us/op':>15} {'cumtime us/op':>15}  function")
    entries = []
    for (file, line, func), (_, ncalls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        short = file.split("site-packages/")[-1].split("/lib/python3.11/")[-1]
        short = short.replace(str(REPO) + "/", "")
        entries.append((tottime, cumtime, ncalls, f"{func} ({short}:{line})"))
    for order, title in ((0, "by tottime"), (1, "by cumtime")):
        lines.append(f"-- {title}")
        for tottime, cumtime, ncalls, name in sorted(entries, key=lambda e: -e[order])[:limit]:
            lines.append(
                f"{ncalls / payments:>10.2f} {1e6 * tottime / payments:>15.1f}"
                f" {1e6 * cumtime / payments:>15.1f}  {name}"
            )
    return "\n".join(lines)


def py_spy_binary(python: str) -> str | None:
    """py-spy beside the bridge's interpreter (the venv's), else on ``PATH``; ``None``: absent."""
    return shutil.which("py-spy", path=str(Path(python).parent)) or shutil.which("py-spy")


class PySpy:
    """``py-spy record --format raw`` on one process for ``seconds`` into ``raw``: started by
    :meth:`start` at a load's counted window (so it samples only that), awaited by
    :meth:`wait`. ``threads``: samples by thread; ``native``: C frames too, which needs the
    process stopped for each sample (blocking), else ``--nonblocking`` so the profile does
    not slow what it measures; ``gil``: only samples of a thread that holds the GIL."""

    def __init__(
        self,
        binary: str,
        pid: int,
        seconds: int,
        rate: int,
        raw: Path,
        threads: bool = True,
        native: bool = False,
        gil: bool = False,
    ) -> None:
        self.raw = raw
        self.seconds = seconds
        self.command = [binary, "record", "--pid", str(pid), "--duration", str(seconds)]
        self.command += ["--rate", str(rate), "--format", "raw", "--output", str(raw)]
        self.command += ["--threads"] if threads else []
        self.command += ["--native"] if native else ["--nonblocking"]
        self.command += ["--gil"] if gil else []
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def wait(self) -> None:
        """Until py-spy is done (killed 30 s past its duration); raises if it wrote no raw
        stacks."""
        assert self.proc is not None, "py-spy was never started"
        try:
            self.proc.wait(self.seconds + 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        if not self.raw.exists():
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
            raise RuntimeError(f"py-spy wrote nothing: {err}")


def collect_cprofile(dumped: Path, kept: Path, timeout_s: float = 30.0) -> Path:
    """Copy the stats a profiled process dumps as its window ends (``SIGUSR2``) to ``kept``,
    once it has written them."""
    deadline = time.monotonic() + timeout_s
    while not dumped.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # the dump may still be being written
    shutil.copy(dumped, kept)
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.profile", description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--gil", action="store_true", help="py-spy: only samples holding the GIL")
    parser.add_argument("--native", action="store_true", help="py-spy: C frames too (blocking)")
    parser.add_argument("--no-cprofile", action="store_true")
    parser.add_argument("--python", default=None)
    parser.add_argument(
        "--workers", type=int, default=0, help="[server] workers (profiles the owner)"
    )
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 60 or not 1 <= args.concurrency <= 1024:
        parser.error("--duration in (0, 60], --concurrency in [1, 1024]")
    python = bridge_python(args.python)
    py_spy = py_spy_binary(python)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="profile-", dir=RESULTS))
    (folder / "data").mkdir()
    locations = [level_location(args.concurrency, i) for i in range(2)]
    bridge = Bridge(
        python, write_config(folder, locations, workers=args.workers), folder, plain=False
    )
    report: dict[str, Any] = {"concurrency": args.concurrency, "duration_s": args.duration}
    try:
        bridge.start()
        print(f"bridge pid {bridge.pid} on 127.0.0.1:{bridge.port}")
        if py_spy is None:
            print("py-spy not found: `.venv/bin/pip install py-spy` for the sampling profile")
        else:
            sampled_s = max(1, int(args.duration) - 1)
            raw = RESULTS / f"profile-{stamp}-pyspy.txt"
            spy = PySpy(py_spy, bridge.pid, sampled_s, args.rate, raw, True, args.native, args.gil)
            level = run_level(
                bridge,
                locations[0],
                args.concurrency,
                args.warmup,
                args.duration,
                f"prof-{stamp}",
                on_start=spy.start,
                on_end=spy.wait,
            )
            spy.wait()
            payments = round(level["payments_per_s"] * sampled_s)
            summary = summarise_raw(raw, args.rate, payments, sampled_s)
            gc = level.get("group_commit") or {}
            print(
                f"\nload: {level['payments_per_s']:.0f} payments/s at concurrency"
                f" {args.concurrency} under py-spy, p50 {fmt(level['latency_ms']['p50'], '.1f')}"
                f" ms, errors {level['errors']}; bridge CPU"
                f" {fmt(level['bridge_cpu']['ms_per_payment'], '.2f')} ms/payment (loop"
                f" {level['bridge_cpu']['main_thread_pct']:.0f}% + others"
                f" {level['bridge_cpu']['other_threads_pct']:.0f}% of a core); group commit:"
                f" {fmt(gc.get('mean_batch'), '.1f')} writes/batch,"
                f" {fmt(gc.get('commits_per_payment'), '.2f')} commits and"
                f" {fmt(gc.get('writes_per_payment'), '.2f')} writes per payment"
            )
            print_pyspy(summary)
            report["pyspy"] = {"level": level, "threads": summary, "raw": str(raw)}
        if not args.no_cprofile:
            level = run_level(
                bridge,
                locations[1],
                args.concurrency,
                args.warmup,
                args.duration,
                f"cprof-{stamp}",
                on_start=bridge.toggle_cprofile,
                on_end=bridge.toggle_cprofile,
            )
            stats_path = RESULTS / f"profile-{stamp}.cprofile"
            collect_cprofile(bridge.cprofile_path, stats_path)
            payments = level["ok"]
            print(f"\n{level['payments_per_s']:.0f} payments/s under cProfile")
            print(summarise_cprofile(stats_path, payments))
            report["cprofile"] = {"level": level, "stats": str(stats_path)}
    finally:
        bridge.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print()
    write_results(report, f"profile-{stamp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
