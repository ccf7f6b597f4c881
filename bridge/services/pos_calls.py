"""Every call to a POS driver, with its deadline, reported to the health monitor.

Why one place: the request's path and the outbox worker call the same drivers, and used to
do it with two deadline mechanisms and two ideas of what a failure says about the POS.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import TypeVar

from bridge.services.deadlines import Deadlines
from bridge.services.health import PosHealth
from drivers.base import PosDriver
from drivers.errors import PosTimeoutError, PosUnavailableError

T = TypeVar("T")


class PosCalls:
    """Runs driver calls with ``timeout_s`` each (:class:`Deadlines`, a coarse tick)."""

    def __init__(
        self, drivers: Mapping[str, PosDriver], health: PosHealth, timeout_s: float
    ) -> None:
        self._drivers = drivers
        self._health = health
        self._timeout_s = timeout_s
        self._deadlines = Deadlines()

    def driver(self, name: str) -> PosDriver:
        return self._drivers[name]

    async def call(self, driver_name: str, call: Awaitable[T]) -> T:
        """Await a driver call with the POS deadline, and tell the health monitor.

        Raises:
            PosTimeoutError: no answer within the deadline (the call may have landed).
            PosUnavailableError: the driver's own, as raised.
        """
        try:
            result = await self._deadlines.run(call, self._timeout_s)
        except TimeoutError as exc:
            if isinstance(exc, PosTimeoutError):
                await self._health.observe(driver_name, False, str(exc) or "timeout")
                raise
            await self._health.observe(driver_name, False, "no answer within the deadline")
            raise PosTimeoutError("the POS did not answer in time") from exc
        except PosUnavailableError as exc:
            await self._health.observe(driver_name, False, str(exc))
            raise
        if not self._health.is_online(driver_name):  # observing "still online" changes nothing
            await self._health.observe(driver_name, True)
        return result
