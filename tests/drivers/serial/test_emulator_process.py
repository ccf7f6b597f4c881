"""``pos-bridge pos-emulator serial:pty`` as a real process: its pty, control API and state file."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import aiohttp
import pytest

from drivers.errors import PosTimeoutError, PosUnavailableError
from tests.crash.emulator import emulator_process
from tests.drivers.serial.harness import LOCATION, instruction, serial_driver

LINE = "serial:pty?baudrate=115200"


async def test_emulator_process_serves_a_pty_and_obeys_its_control_api(tmp_path: Path) -> None:
    state = tmp_path / "pos.sqlite3"
    async with emulator_process(LINE, state, tables=4) as emulator:
        url, control, proc = emulator.driver_url, emulator.control_url, emulator.proc
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

    async with (
        emulator_process(LINE, state, tables=4) as emulator,  # rebooted, same bills
        serial_driver(emulator.driver_url, timeout_ms=1000) as driver,
    ):
        found = await driver.find_payment(LOCATION, "proc-1")
        assert found is not None and found.pos_reference == paid.pos_reference
