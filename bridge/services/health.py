"""Whether each POS is reachable, from probes and from what real calls observed.

Logs once when a POS goes offline and once when it recovers (never once per failed call),
and tells listeners about a recovery so the outbox can drain at once instead of waiting out
its backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from drivers.base import PosDriver
from drivers.errors import DriverError

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class PosState:
    online: bool
    since: datetime
    detail: str


class PosHealth:
    def __init__(self, drivers: Mapping[str, PosDriver], clock: Callable[[], datetime]) -> None:
        self._drivers = drivers
        self._clock = clock
        now = clock()
        self.states = {name: PosState(True, now, "not probed yet") for name in drivers}
        self._on_recovery: list[Callable[[str], Awaitable[None]]] = []

    def on_recovery(self, callback: Callable[[str], Awaitable[None]]) -> None:
        self._on_recovery.append(callback)

    def is_online(self, driver: str) -> bool:
        return self.states[driver].online

    async def observe(self, driver: str, online: bool, detail: str = "") -> None:
        """Record what a probe or a real call just saw."""
        state = self.states[driver]
        if state.online == online:
            if detail:
                state.detail = detail
            return
        self.states[driver] = PosState(online, self._clock(), detail)
        if online:
            logger.info("POS %s recovered: %s", driver, detail or "reachable")
            for callback in self._on_recovery:
                await callback(driver)
        else:
            logger.warning("POS %s went offline: %s", driver, detail or "unreachable")

    async def probe_all(self) -> None:
        for name, driver in self._drivers.items():
            try:
                health = await driver.health()
            except DriverError as exc:
                await self.observe(name, False, str(exc))
            else:
                await self.observe(name, health.online, health.detail)
