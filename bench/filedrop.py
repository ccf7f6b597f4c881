"""File-drop driver: bill fetches and payments per second against the POS emulator.

The emulator (``python -m bridge pos-emulator file:///…``, its bills in a SQLite file) runs in
its own process; this process drives :class:`drivers.filedrop.driver.FileDropDriver` on the
same folder, as the bridge would. Each round trip is two atomic file writes (temp, fsync,
rename, folder fsync) and two folder-watch wake-ups, so the figures are those of the folder's
file system and of the watch, not of the network.

``measure(duration)`` is the entry point a shared harness can call; ``python -m
bench.filedrop`` runs it for a few concurrency levels and both watch modes and writes
``bench/results/filedrop-<timestamp>.json``. Unlike the other bench modules this one imports
the driver, so it runs under ``.venv/bin/python``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.common import REPO, child_env, cpu_seconds, write_results
from bridge.core.money import Money
from drivers.base import DriverSettings, PaymentInstruction
from drivers.filedrop.driver import FileDropDriver

LOCATION = "1"
TABLES = 50
START_TIMEOUT_S = 30.0
WARMUP_CALLS = 20


def measure(
    duration: float = 5.0,
    *,
    concurrency: int = 1,
    watch: str = "events",
    poll_interval_ms: int = 300,
    data_root: Path | None = None,
) -> dict[str, Any]:
    """Bill fetches/s, then payments/s, each for ``duration`` seconds with ``concurrency``
    callers, through the file-drop driver against an emulator process. Returns rates, p50 and
    p99 latency (ms), and the emulator's CPU seconds per request."""
    with tempfile.TemporaryDirectory(prefix="bench-filedrop-", dir=data_root) as tmp:
        folder = Path(tmp) / "drop"
        emulator = _start_emulator(folder, Path(tmp) / "pos.sqlite3")
        try:
            options = {"watch": watch, "poll_interval_ms": poll_interval_ms, "timeout_ms": 10_000}
            report = asyncio.run(_measure(folder, emulator.pid, duration, concurrency, options))
            return {"concurrency": concurrency, **options, **report}
        finally:
            emulator.terminate()
            emulator.wait(timeout=10)


def _start_emulator(folder: Path, state: Path) -> subprocess.Popen[str]:
    python = REPO / ".venv" / "bin" / "python"
    argv = [str(python if python.exists() else sys.executable), "-m", "bridge", "pos-emulator"]
    argv += [f"file://{folder}", "--state", str(state), "--tables", str(TABLES)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=child_env(), cwd=REPO)
    deadline = time.monotonic() + START_TIMEOUT_S
    assert proc.stdout is not None
    while time.monotonic() < deadline:  # bounded: the emulator prints its URL when ready
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("POS emulator ready"):
            return proc
    proc.kill()
    raise RuntimeError("the POS emulator did not start")


async def _measure(
    folder: Path, pid: int, duration: float, concurrency: int, options: dict[str, Any]
) -> dict[str, Any]:
    url = urlsplit(f"file://{folder}")
    driver = FileDropDriver(DriverSettings("bench", url, options))
    await driver.open()
    try:
        bills = {t: await driver.get_open_bill(LOCATION, t) for t in range(1, TABLES + 1)}
        for _ in range(WARMUP_CALLS):
            await driver.get_open_bill(LOCATION, 1)
        tables = itertools.cycle(range(1, TABLES + 1))
        ids = itertools.count(1)

        async def fetch() -> None:
            await driver.get_open_bill(LOCATION, next(tables))

        async def pay() -> None:
            table = next(tables)
            bill = bills[table]
            assert bill is not None
            await driver.apply_payment(
                PaymentInstruction(
                    payment_id=f"bench-{next(ids)}",
                    location=LOCATION,
                    table=table,
                    bill_ref=bill.id,
                    amount=Money(1, bill.currency),
                    tip=Money(0, bill.currency),
                    label="bench",
                )
            )

        stat = Path(f"/proc/{pid}/stat")
        report: dict[str, Any] = {}
        for name, operation in (("bill_fetch", fetch), ("payment_apply", pay)):
            cpu_before = cpu_seconds(stat) if stat.exists() else 0.0
            latencies = await _run(operation, duration, concurrency)
            cpu = (cpu_seconds(stat) if stat.exists() else 0.0) - cpu_before
            latencies.sort()
            report[name] = {
                "per_s": round(len(latencies) / duration, 1),
                "p50_ms": round(statistics.median(latencies) * 1000, 2),
                "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
                "emulator_cpu_ms_per_request": round(cpu / len(latencies) * 1000, 3),
            }
        return report
    finally:
        await driver.close()


async def _run(operation: Any, duration: float, concurrency: int) -> list[float]:
    """Call ``operation`` back to back from ``concurrency`` callers for ``duration`` s."""
    loop = asyncio.get_running_loop()
    end = loop.time() + duration
    latencies: list[float] = []

    async def caller() -> None:
        while loop.time() < end:
            began = loop.time()
            await operation()
            latencies.append(loop.time() - began)

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--levels", default="1,4", help="concurrency levels, comma-separated")
    parser.add_argument("--watch", default="events,poll", help="watch modes, comma-separated")
    parser.add_argument("--poll-interval-ms", type=int, default=50, help="for watch=poll")
    parser.add_argument("--data-root", type=Path, default=None, help="folder for the drop folder")
    args = parser.parse_args()
    began = time.monotonic()
    runs = []
    for watch in args.watch.split(","):
        for level in (int(x) for x in args.levels.split(",")):
            result = measure(
                args.duration,
                concurrency=level,
                watch=watch,
                poll_interval_ms=args.poll_interval_ms,
                data_root=args.data_root,
            )
            runs.append(result)
            print(f"watch={watch:6} concurrency={level:2}  {_line(result)}", flush=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    report = {"runs": runs, "run_seconds": round(time.monotonic() - began, 1)}
    write_results(report, f"filedrop-{stamp}")


def _line(result: dict[str, Any]) -> str:
    return "  ".join(
        f"{name}: {r['per_s']:7.1f}/s p50 {r['p50_ms']:6.2f} ms p99 {r['p99_ms']:6.2f} ms"
        f" (emulator {r['emulator_cpu_ms_per_request']:.2f} ms CPU each)"
        for name, r in ((n, result[n]) for n in ("bill_fetch", "payment_apply"))
    )


if __name__ == "__main__":
    main()
