"""``pos-bridge pos-emulator serial:pty`` as a real process: its pty, control API and state file."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from drivers.errors import PosTimeoutError, PosUnavailableError
from tests.drivers.serial.harness import LOCATION, instruction, serial_driver

READY = "POS emulator ready: driver url = "
CONTROL = "control API: "


async def start_emulator(state: Path) -> tuple[asyncio.subprocess.Process, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "pos-emulator", "serial:pty?baudrate=115200",
        "--state", str(state), "--control-port", "0", "--tables", "4",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    url = control = ""
    async with asyncio.timeout(20):
        while not (url and control):
            line = (await proc.stdout.readline()).decode()
            assert line, "the emulator exited before it was ready"
            if line.startswith(READY):
                url = line[len(READY) :].strip()
            elif line.startswith(CONTROL):
                control = line[len(CONTROL) :].strip().removesuffix("/faults")
    return proc, url, control


async def test_emulator_process_serves_a_pty_and_obeys_its_control_api(tmp_path: Path) -> None:
    proc, url, control = await start_emulator(tmp_path / "pos.sqlite3")
    try:
        assert url.startswith("serial:///dev/") and "baudrate=115200" in url
        async with serial_driver(url, timeout_ms=1000) as driver, aiohttp.ClientSession() as http:
            bill = await driver.get_open_bill(LOCATION, 2)
            assert bill is not None
            paid = await driver.apply_payment(instruction(bill, "proc-1", 300))
            assert paid.bill is not None
            async with http.put(f"{control}/faults", data=json.dumps({"silent": True})) as r:
                assert r.status == 200
            with pytest.raises(PosTimeoutError):
                await driver.list_tables(LOCATION)
            async with http.put(f"{control}/faults", data=json.dumps({"silent": False})) as r:
                assert r.status == 200
            assert await driver.find_payment(LOCATION, "proc-1") is not None

            os.kill(proc.pid, signal.SIGKILL)  # the POS dies: its pty goes with it
            await proc.wait()
            with pytest.raises(PosUnavailableError):
                await driver.list_tables(LOCATION)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    proc, url, _ = await start_emulator(tmp_path / "pos.sqlite3")  # rebooted, same bills
    try:
        async with serial_driver(url, timeout_ms=1000) as driver:
            found = await driver.find_payment(LOCATION, "proc-1")
            assert found is not None and found.pos_reference == paid.pos_reference
    finally:
        proc.kill()
        await proc.wait()
