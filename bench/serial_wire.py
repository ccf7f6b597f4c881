"""Serial driver at a real line speed: bill fetches and payments over a paced 9600-baud line.

A pty does not enforce a baud rate, so the emulated POS (in memory, on its own pty) and the
bridge's serial driver talk through :func:`drivers.emulator.serial_line.serial_line`, which
releases each direction's bytes at ``baudrate / 10`` bytes per second (8N1). For each phase
the run reports the rate, and the ratio of the time taken to the pure wire time of every
byte that crossed the line in both directions (target ≤ 1.3×): what PBS1's framing is not
charged for, but its turnarounds, ACK waits and the Python on each end are.

    .venv/bin/python -m bench.serial_wire [--baud 9600] [--fetches 20] [--payments 10]

Unlike the other bench modules it runs the driver in process (it needs the package), one
event loop for POS, line and driver; everything is bounded by the driver's own timeouts.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from bench.common import write_results
from bridge.core.money import Money
from drivers.base import DriverSettings, PaymentInstruction
from drivers.emulator.pos import EmulatedPos
from drivers.emulator.run import make_pos, running_emulator
from drivers.emulator.serial_line import LineStats, serial_line
from drivers.serial.driver import SerialDriver

LOCATION = "1"


def _bytes(stats: LineStats) -> int:
    return stats.to_pos.bytes_out + stats.to_bridge.bytes_out


async def _phase(name: str, count: int, stats: LineStats, baud: int, step: Any) -> dict[str, Any]:
    before = _bytes(stats)
    started = time.perf_counter()
    for i in range(count):
        await step(i)
    elapsed = time.perf_counter() - started
    wire_bytes = _bytes(stats) - before
    wire_s = wire_bytes * 10 / baud
    result = {
        "phase": name,
        "operations": count,
        "seconds": round(elapsed, 3),
        "per_second": round(count / elapsed, 3),
        "wire_bytes": wire_bytes,
        "bytes_per_operation": round(wire_bytes / count),
        "wire_seconds": round(wire_s, 3),
        "ratio_to_wire_time": round(elapsed / wire_s, 3),
    }
    print(
        f"{name:>14}: {count} in {elapsed:6.2f} s = {count / elapsed:5.2f}/s; "
        f"{wire_bytes} bytes = {wire_s:6.2f} s of wire; ratio {elapsed / wire_s:.3f}",
        flush=True,
    )
    return result


async def run(baud: int, fetches: int, payments: int) -> dict[str, Any]:
    pos = make_pos(None, tables=max(fetches, payments, 1))
    line_query = f"baudrate={baud}"
    async with running_emulator(f"serial:pty?{line_query}", pos) as (pos_url, _):  # noqa: SIM117
        async with serial_line(urlsplit(pos_url).path, baudrate=baud) as (port, stats):
            url = urlsplit(f"serial://{port}?{line_query}")
            driver = SerialDriver(DriverSettings("bench", url, {"timeout_ms": 30_000}))
            await driver.open()
            try:
                return await _measure(driver, pos, stats, baud, fetches, payments)
            finally:
                await driver.close()


async def _measure(
    driver: SerialDriver,
    pos: EmulatedPos,
    stats: LineStats,
    baud: int,
    fetches: int,
    payments: int,
) -> dict[str, Any]:
    await driver.health()  # warm up: the port is open, the POS has answered

    async def fetch(i: int) -> None:
        assert await driver.get_open_bill(LOCATION, 1 + i % fetches) is not None

    async def pay(i: int) -> None:
        bill = await pos.simulator.get_open_bill(LOCATION, 1 + i)  # not timed: in process
        assert bill is not None
        amount, tip = Money(100, bill.currency), Money.zero(bill.currency)
        await driver.apply_payment(
            PaymentInstruction(f"bench-{i}", LOCATION, bill.table, bill.id, amount, tip, "B")
        )

    phases = [
        await _phase("bill fetch", fetches, stats, baud, fetch),
        await _phase("payment apply", payments, stats, baud, pay),
    ]
    codec = driver.exchange._codec  # type: ignore[attr-defined]
    return {
        "baudrate": baud,
        "phases": phases,
        "bridge_retransmits": codec.link.stats.retransmitted,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baud", type=int, default=9600)
    parser.add_argument("--fetches", type=int, default=20)
    parser.add_argument("--payments", type=int, default=10)
    args = parser.parse_args()
    started = time.perf_counter()
    report = asyncio.run(run(args.baud, args.fetches, args.payments))
    report["run_seconds"] = round(time.perf_counter() - started, 1)
    report["when"] = datetime.now(UTC).isoformat(timespec="seconds")
    worst = max(p["ratio_to_wire_time"] for p in report["phases"])
    verdict = "met" if worst <= 1.3 else "NOT met"
    print(f"worst ratio to wire time: {worst:.3f} (target <= 1.3: {verdict})")
    write_results(report, "serial-wire")


if __name__ == "__main__":
    main()
