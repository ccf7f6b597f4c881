"""Switching the POS under test off and on, so the kit can check what a driver does then.

A driver is only half tested while its POS always answers: the bridge's promises rest on a
driver that says, typed and in time, that the POS is gone, and that works again when it is
back. The kit cannot pull a vendor's cable, so it asks a :class:`PosControl`; without one,
the checks that need it are skipped (and say so).

Each method gets the driver the kit is using, because the simulator's switch lives in the
driver object itself; a real or emulated POS is switched from outside and ignores it.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import aiohttp

from drivers.base import PosDriver
from drivers.errors import DriverConfigError

#: How long one call to an emulator's control API may take.
CONTROL_TIMEOUT_S = 5.0


class PosControl(Protocol):
    """The POS's power switch and its failure modes, as the kit needs them."""

    describe: str

    async def offline(self, driver: PosDriver) -> None:
        """The POS stops answering (hung, unplugged): requests get no reply."""
        ...

    async def lose_replies(self, driver: PosDriver) -> None:
        """The POS carries requests out but its replies are lost (it crashed right after)."""
        ...

    async def restart(self, driver: PosDriver, seconds: float) -> None:
        """The POS reboots: connections drop and nothing answers for ``seconds``."""
        ...

    async def online(self, driver: PosDriver) -> None:
        """Back to normal: every fault above switched off."""
        ...


class SimulatorControl:
    """The simulator's modes (``offline``, ``lossy``) set on the driver the kit uses."""

    describe = "simulator modes"

    def __init__(self) -> None:
        self._restarts: list[asyncio.TimerHandle] = []

    async def offline(self, driver: PosDriver) -> None:
        _simulator(driver).set_mode("offline")

    async def lose_replies(self, driver: PosDriver) -> None:
        _simulator(driver).set_mode("lossy")

    async def restart(self, driver: PosDriver, seconds: float) -> None:
        simulator = _simulator(driver)
        simulator.set_mode("offline")
        loop = asyncio.get_running_loop()
        self._restarts.append(loop.call_later(seconds, simulator.set_mode, "online"))

    async def online(self, driver: PosDriver) -> None:
        for handle in self._restarts:
            handle.cancel()
        self._restarts.clear()
        _simulator(driver).set_mode("online")


class EmulatorControl:
    """The POS emulator's control API (``drivers/emulator/control.py``) at ``base_url``."""

    def __init__(self, base_url: str) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise DriverConfigError("control", f"{base_url!r} is not an http:// URL")
        self.base_url = base_url.rstrip("/")
        self.describe = f"emulator control API at {self.base_url}"

    async def offline(self, driver: PosDriver) -> None:
        await self._call("PUT", "/faults", {"silent": True})

    async def lose_replies(self, driver: PosDriver) -> None:
        await self._call("PUT", "/faults", {"drop_replies": True})

    async def restart(self, driver: PosDriver, seconds: float) -> None:
        await self._call("POST", "/reboot", {"seconds": seconds})

    async def online(self, driver: PosDriver) -> None:
        normal = {"silent": False, "drop_replies": False, "delay_ms": 0, "corrupt_per_mille": 0}
        await self._call("PUT", "/faults", normal)

    async def _call(self, method: str, path: str, body: dict[str, Any]) -> None:
        timeout = aiohttp.ClientTimeout(total=CONTROL_TIMEOUT_S)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, self.base_url + path, json=body) as response,
        ):
            if response.status != 200:
                text = await response.text()
                raise RuntimeError(f"{self.describe}: {method} {path}: {response.status} {text}")


def _simulator(driver: PosDriver) -> Any:
    """The driver's ``set_mode`` switch (the simulator's, or a test double wrapping it)."""
    if not callable(getattr(driver, "set_mode", None)):
        raise TypeError(f"{type(driver).__name__} has no set_mode(): not a simulator")
    return driver
