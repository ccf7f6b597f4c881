"""Instructions per durable payment: the bridge under callgrind, a figure other tenants can't move.

    .venv/bin/python -m bench.instructions                # or: python bench/instructions.py
    .venv/bin/python -m bench.instructions --concurrency 16 --duration 15

Why: this machine is two shared cores, and other tenants' load swings payments/s and even
CPU seconds per payment by tens of percent between runs. Instructions executed per payment
do not move with them (repeat runs agree within ~2 %), so a change that saves CPU shows
here even when a wall-clock A/B is swamped. What it does not count: the kernel's work
(syscalls: socket writes, WAL ``pwrite``s, ``fsync``), which ``bench.payments``'s CPU
column does include.

The bridge starts as in ``bench/payments.py`` (``bench.serve_counted``, in-memory simulator
POS, 999 tables), but under ``valgrind --tool=callgrind --instr-atstart=no``: nothing is
counted while it starts and while the load generator fetches the bills and warms up; at the
generator's ``MARK start`` counting is switched on (``callgrind_control -i on``) and at
``MARK end`` off again. Printed (and written to ``bench/results/instructions-<timestamp>.json``,
git-ignored): payments in the window, instructions, instructions per payment. Under
callgrind the bridge runs ~50 times slower, so a 15 s window holds a few hundred payments.
Needs ``valgrind`` (Debian: ``apt-get install valgrind``). Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO))

from bench import common  # noqa: E402  (after the sys.path fix for script runs)
from bench.bridge_process import (  # noqa: E402
    Bridge,
    bridge_python,
    code_version,
    level_location,
    write_config,
)
from bench.common import write_results  # noqa: E402
from bench.payments import run_level  # noqa: E402

#: Under valgrind the bridge takes far longer than the usual minute to say it listens.
START_UNDER_VALGRIND_S = 240.0


def under_callgrind(argv: list[str], out_file: Path, *, from_start: bool = False) -> list[str]:
    """``argv`` under callgrind, counting nothing until ``callgrind_control -i on`` (or, with
    ``from_start``, everything), its output (and each dump's, suffixed ``.1``, ``.2``, …) in
    ``out_file``."""
    return [
        "valgrind",
        "--tool=callgrind",
        *([] if from_start else ["--instr-atstart=no"]),
        f"--callgrind-out-file={out_file}",
        *argv,
    ]


def callgrind_control(pid: int, *flags: str) -> None:
    """``callgrind_control FLAGS PID``: ``-i on``/``-i off`` switch counting, ``-z`` zeroes
    the counts, ``-d`` dumps them."""
    subprocess.run(["callgrind_control", *flags, str(pid)], capture_output=True, timeout=60)


def callgrind_total(paths: Iterable[Path]) -> int:
    """Instructions counted, from the ``summary:``/``totals:`` lines of callgrind's outputs
    (the largest: a dump's own total, or the final file's)."""
    total = 0
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                total = max(total, int(line.split()[1]))
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.instructions", description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=15.0, help="counted s")
    parser.add_argument("--warmup", type=float, default=3.0, help="uncounted s")
    parser.add_argument("--python", default=None, help="interpreter for the bridge")
    parser.add_argument("--no-write", action="store_true", help="do not write the JSON file")
    parser.add_argument(
        "--workers", type=int, default=0, help="[server] workers: counts the owner process only"
    )
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 120 or not 1 <= args.concurrency <= 256:
        parser.error("--duration in (0, 120], --concurrency in [1, 256]")
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} not found (Debian: apt-get install valgrind)")
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="instructions-", dir=common.RESULTS))
    (folder / "data").mkdir()
    location = level_location(args.concurrency, 0)
    bridge = Bridge(
        bridge_python(args.python),
        write_config(folder, [location], workers=args.workers),
        folder,
        False,
    )
    bridge.argv = under_callgrind(bridge.argv, folder / "callgrind.out")
    common.START_TIMEOUT_S = START_UNDER_VALGRIND_S  # read by ServerProcess.start
    began = time.perf_counter()
    try:
        bridge.start()
        print(f"bridge pid {bridge.pid} under callgrind on 127.0.0.1:{bridge.port}")
        level = run_level(
            bridge,
            location,
            args.concurrency,
            args.warmup,
            args.duration,
            time.strftime("ins-%Y%m%d-%H%M%S"),
            on_start=lambda: callgrind_control(bridge.pid, "-i", "on"),
            on_end=lambda: callgrind_control(bridge.pid, "-i", "off"),
        )
        bridge.stop()  # callgrind writes its totals as the bridge exits
        instructions = callgrind_total(folder.glob("callgrind.out*"))
    finally:
        bridge.stop()
        shutil.rmtree(folder, ignore_errors=True)
    payments = level["ok"]
    elapsed_s = time.perf_counter() - began
    report: dict[str, Any] = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "code": code_version(),
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "payments": payments,
        "errors": level["errors"],
        "instructions": instructions,
        "instructions_per_payment": instructions / payments if payments else None,
        "run_seconds": round(elapsed_s, 1),
    }
    print(
        f"{payments} payments (errors {level['errors']}) at concurrency {args.concurrency}:"
        f" {instructions:,} instructions,"
        f" {report['instructions_per_payment'] or 0:,.0f} per payment (user space)"
    )
    if not args.no_write:
        write_results(report, f"instructions-{time.strftime('%Y%m%d-%H%M%S')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
