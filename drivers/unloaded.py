"""The stand-in for a configured driver whose plugin failed to import.

A broken plugin must not take the bridge down with it: the other drivers' locations keep
working. Its own locations answer as if their POS were unreachable (503 ``pos_offline``,
naming the load failure), health shows it offline with the same reason, and no call can
reach a POS, so nothing is applied until the plugin is fixed and the bridge restarted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar, NoReturn

from bridge.core.bill import Bill
from drivers.base import DriverHealth, DriverInfo, PaymentInstruction, PosPayment, Table
from drivers.errors import PosOfflineError


class UnloadedDriver:
    """Every call raises :class:`PosOfflineError` (nothing was sent) with ``reason``."""

    info: ClassVar[DriverInfo] = DriverInfo(
        name="unloaded", version="0", description="stand-in for a driver that failed to load"
    )

    def __init__(self, scheme: str, reason: str) -> None:
        self.scheme = scheme
        self.reason = reason

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def list_tables(self, location: str) -> list[Table]:
        self._fail()

    async def get_open_bill(self, location: str, table: int) -> Bill | None:
        self._fail()

    async def apply_payment(self, instruction: PaymentInstruction) -> PosPayment:
        self._fail()

    async def find_payment(self, location: str, payment_id: str) -> PosPayment | None:
        self._fail()

    async def health(self) -> DriverHealth:
        return DriverHealth(False, self.reason, datetime.now(UTC))

    def _fail(self) -> NoReturn:
        raise PosOfflineError(self.reason)
