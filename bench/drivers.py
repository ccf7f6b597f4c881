"""Driver throughput: bill fetches and payments per second, per driver, against its POS.

Each driver talks to a POS in its own process where it has one: the simulator runs in this
process (it is the POS); the TCP driver talks to ``pos-bridge pos-emulator tcp://…`` in a
child process. For each driver, at concurrency 1 (one call after another: latency-bound) and
at concurrency 16 (pipelined where the driver allows): bill fetches/s and payments applied/s,
with p50/p99 latency. Payments are 1 minor unit each, on many tables, so no bill runs out.

Adding a driver is one entry in :data:`TARGETS`: an async context manager that starts its POS
and yields a :class:`Target` (driver URL and options, and optionally extra figures, such as
the serial driver's ratio of time taken to pure wire time).

    .venv/bin/python -m bench.drivers [--drivers simulator,tcp] [--duration 3] [--levels 1,16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.common import REPO, child_env, cpu_seconds, write_results
from bridge.core.money import Money
from drivers.base import DriverSettings, PaymentInstruction, PosDriver
from drivers.registry import load_driver

LOCATION = "1"
TABLES = 200
START_TIMEOUT_S = 30.0


@dataclass
class Target:
    """What a driver entry yields: where its POS is, and how to read extra figures."""

    url: str
    options: dict[str, Any] = field(default_factory=dict)
    extra: Callable[[], dict[str, Any]] = dict
    pos_pid: int | None = None  # the POS's process, when it has its own: its CPU is counted


# -- the drivers ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def simulator_target(work: Path) -> AsyncIterator[Target]:
    """The simulated POS, in memory, in this process (no wire)."""
    yield Target("simulator:", {"tables": TABLES})


@contextlib.asynccontextmanager
async def emulator_target(
    work: Path, url: str, options: dict[str, Any] | None = None
) -> AsyncIterator[Target]:
    """``pos-bridge pos-emulator URL`` in a child process (in memory, no state file)."""
    argv = [sys.executable, "-m", "bridge", "pos-emulator", url, "--tables", str(TABLES)]
    scheme = url.split(":", 1)[0]
    with (work / f"{scheme}-emulator.log").open("wb") as log:
        proc = subprocess.Popen(
            argv, cwd=REPO, env=child_env(), stdout=subprocess.PIPE, stderr=log, text=True
        )
    try:
        driver_url = await asyncio.wait_for(asyncio.to_thread(_ready_url, proc), START_TIMEOUT_S)
        yield Target(driver_url, {"timeout_ms": 10_000, **(options or {})}, pos_pid=proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def serial_target(work: Path) -> contextlib.AbstractAsyncContextManager[Target]:
    """PBS1 over a pty pair (no baud pacing: ``bench.serial_wire`` measures the line rate)."""
    return emulator_target(work, "serial:pty")


def tcp_target(work: Path) -> contextlib.AbstractAsyncContextManager[Target]:
    """PBT1 to the emulator on 127.0.0.1."""
    return emulator_target(work, "tcp://127.0.0.1:0")


def file_target(work: Path) -> contextlib.AbstractAsyncContextManager[Target]:
    """File-drop in a local folder, the folder watched through OS events."""
    (work / "drop").mkdir(exist_ok=True)
    return emulator_target(work, f"file://{work / 'drop'}", {"watch": "events"})


def file_poll_target(work: Path) -> contextlib.AbstractAsyncContextManager[Target]:
    """File-drop polled every 50 ms, as on a share that sends no change notifications."""
    (work / "drop-poll").mkdir(exist_ok=True)
    options = {"watch": "poll", "poll_interval_ms": 50}
    return emulator_target(work, f"file://{work / 'drop-poll'}", options)


def _ready_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:
        if "driver url = " in line:
            return line.split("driver url = ", 1)[1].strip()
    raise RuntimeError(f"emulator exited ({proc.wait()}) before it was ready")


#: driver name → its POS. Other drivers add one entry each.
TARGETS: dict[str, Callable[[Path], contextlib.AbstractAsyncContextManager[Target]]] = {
    "simulator": simulator_target,
    "serial": serial_target,
    "tcp": tcp_target,
    "file": file_target,
    "file-poll": file_poll_target,
}


# -- measuring ------------------------------------------------------------------------------


async def measure(
    call: Callable[[int, int], Awaitable[object]], concurrency: int, duration: float
) -> dict[str, Any]:
    """``call(worker, n)`` from ``concurrency`` workers for ``duration`` seconds."""
    latencies: list[float] = []
    errors = 0
    samples: list[str] = []
    stop_at = time.perf_counter() + duration

    async def worker(index: int) -> None:
        nonlocal errors
        n = 0
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                await call(index, n)
            except Exception as exc:  # counted, not fatal: the bench reports them
                errors += 1
                if len(samples) < 3:
                    samples.append(repr(exc)[:200])
            latencies.append(time.perf_counter() - started)
            n += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies) or [0.0]
    return {
        "concurrency": concurrency,
        "calls": len(latencies),
        "per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
        "errors": errors,
        "error_samples": samples,
    }


async def bench_driver(
    name: str, target: Target, levels: list[int], duration: float
) -> dict[str, Any]:
    factory = load_driver(urlsplit(target.url).scheme)
    driver: PosDriver = factory(DriverSettings(name, urlsplit(target.url), target.options))
    await driver.open()
    try:
        bills = {}
        for table in range(1, TABLES + 1):
            bill = await driver.get_open_bill(LOCATION, table)
            assert bill is not None, f"table {table} has no open bill"
            bills[table] = bill

        async def fetch(worker: int, n: int) -> object:
            return await driver.get_open_bill(LOCATION, 1 + (worker * 7 + n) % TABLES)

        counter = iter(range(10**9))

        async def pay(worker: int, n: int) -> object:
            # round-robin over every table, so no bill runs out (the smallest holds 800 cents;
            # the simulator's ~110,000 payments a run leave each table ~550)
            number = next(counter)
            bill = bills[1 + number % TABLES]
            one = Money(1, bill.currency)
            payment = f"bench-{name}-{number}"
            instruction = PaymentInstruction(
                payment, LOCATION, bill.table, bill.id, one, Money(0, bill.currency), "bench"
            )
            return await driver.apply_payment(instruction)

        async def counted(
            call: Callable[[int, int], Awaitable[object]], level: int
        ) -> dict[str, Any]:
            """One measurement, with CPU ms per call of this process and of the POS's."""
            pos = target.pos_pid
            cpu, pos_cpu = time.process_time(), cpu_seconds(pos) if pos else 0.0
            result = await measure(call, level, duration)
            calls = max(result["calls"], 1)
            result["bench_cpu_ms"] = round((time.process_time() - cpu) * 1000 / calls, 3)
            if pos:
                pos_ms = (cpu_seconds(pos) - pos_cpu) * 1000 / calls
                result["pos_cpu_ms"] = round(pos_ms, 3)
            return result

        runs = []
        for level in levels:
            before = target.extra()
            fetched = await counted(fetch, level)
            paid = await counted(pay, level)
            runs.append({"fetch": fetched, "pay": paid, **_delta(before, target.extra())})
        return {"driver": name, "url": target.url, "runs": runs}
    finally:
        await driver.close()


def _delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {k: v - before.get(k, 0) for k, v in after.items() if isinstance(v, int | float)}


async def run(names: list[str], levels: list[int], duration: float) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-drivers-") as work:
        for name in names:
            async with TARGETS[name](Path(work)) as target:
                results.append(await bench_driver(name, target, levels, duration))
    return results


def print_table(results: list[dict[str, Any]]) -> None:
    print(
        "| driver | concurrency | bill fetches/s | p50 ms | p99 ms | CPU ms/fetch (bridge+POS)"
        " | payments/s | p50 ms | p99 ms | CPU ms/payment (bridge+POS) | errors |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for result in results:
        for r in result["runs"]:
            f, p = r["fetch"], r["pay"]
            print(
                f"| {result['driver']} | {f['concurrency']} | {f['per_s']:,.0f} | {f['p50_ms']} |"
                f" {f['p99_ms']} | {_cpu(f)} | {p['per_s']:,.0f} | {p['p50_ms']} |"
                f" {p['p99_ms']} | {_cpu(p)} | {f['errors'] + p['errors']} |"
            )


def _cpu(result: dict[str, Any]) -> str:
    if "pos_cpu_ms" in result:
        return f"{result['bench_cpu_ms']:.3f} + {result['pos_cpu_ms']:.3f}"
    return f"{result['bench_cpu_ms']:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.drivers", description=__doc__.split("\n")[0])
    parser.add_argument("--drivers", default=",".join(TARGETS))
    parser.add_argument("--levels", default="1,16")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    args = parser.parse_args(argv)
    names = [n for n in args.drivers.split(",") if n]
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        parser.error(f"unknown driver(s) {unknown}; known: {', '.join(TARGETS)}")
    levels = [int(x) for x in args.levels.split(",")]
    started = time.monotonic()
    results = asyncio.run(run(names, levels, args.duration))
    print_table(results)
    report = {
        "run_seconds": round(time.monotonic() - started, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "duration_s": args.duration,
        "results": results,
    }
    write_results(report, "drivers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
