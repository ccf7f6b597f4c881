"""The crash test's POS as its own process: ``pos-bridge pos-emulator`` on a real wire.

With the simulator the POS lives inside the bridge and dies with it; here it outlives every
kill of the bridge, keeps its bills in ``--state`` (which ``verify.check_pos`` reads), and is
switched through its control API. The simulator's modes map to the emulator's faults:
``offline`` and ``failing`` → ``silent`` (no ACK, no answer: the bridge gets no answer),
``lossy`` → ``drop_replies`` (applied, answer lost), ``online`` → no fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

READY = "POS emulator ready: driver url = "
CONTROL = "control API: "
FAULTS = {
    "online": {"silent": False, "drop_replies": False},
    "offline": {"silent": True, "drop_replies": False},
    "failing": {"silent": True, "drop_replies": False},
    "lossy": {"silent": False, "drop_replies": True},
}


@dataclass(frozen=True, slots=True)
class EmulatorProcess:
    proc: asyncio.subprocess.Process
    driver_url: str
    control_url: str

    async def set_mode(self, session: aiohttp.ClientSession, mode: str) -> bool:
        """Switch the POS as the simulator's ``mode`` would; ``False`` if it did not take."""
        try:
            async with session.put(
                f"{self.control_url}/faults", data=json.dumps(FAULTS[mode])
            ) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False


@contextlib.asynccontextmanager
async def emulator_process(
    url: str, state: Path, *, tables: int, delay_ms: int = 0
) -> AsyncIterator[EmulatorProcess]:
    """``pos-bridge pos-emulator URL`` until the block ends (then SIGKILL: it has no cleanup
    the bills depend on, they are committed per call)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "pos-emulator", url, "--state", str(state),
        "--control-port", "0", "--tables", str(tables),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        driver_url = control_url = ""
        async with asyncio.timeout(20):
            while not (driver_url and control_url):
                line = (await proc.stdout.readline()).decode()
                assert line, "the emulator exited before it was ready"
                if line.startswith(READY):
                    driver_url = line[len(READY) :].strip()
                elif line.startswith(CONTROL):
                    control_url = line[len(CONTROL) :].strip().removesuffix("/faults")
        emulator = EmulatorProcess(proc, driver_url, control_url)
        if delay_ms:
            async with (
                aiohttp.ClientSession() as session,
                session.put(
                    f"{control_url}/faults", data=json.dumps({"delay_ms": delay_ms})
                ) as response,
            ):
                assert response.status == 200
        yield emulator
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
