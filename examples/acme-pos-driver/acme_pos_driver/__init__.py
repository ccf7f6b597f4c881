"""ACME's POS as a POS Bridge driver: the smallest complete example of a vendor plugin.

The "POS" here is a device kept in this process's memory (one per URL name: ``acme:`` is the
default one, ``acme:bar`` another), so it outlives any driver object, as a real POS outlives
a bridge restart. Bills come from the simulator's menu and rules (``drivers.simulator.model``)
so that the example stays short; a real driver talks to its POS instead, and turns the POS's
failures into the bridge's error tree (``drivers.errors``):

- cannot reach the POS, nothing sent → ``PosOfflineError``;
- sent, but no answer → ``PosTimeoutError`` (the bridge then asks ``find_payment``);
- the POS says no for good → ``PaymentRefusedError(reason)``;
- no such table → ``UnknownTableError``; a bad URL or option → ``DriverConfigError(key)``.

It passes the conformance kit: ``pos-bridge driver-check acme:``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from bridge.core.bill import Bill
from drivers.base import (
    DriverHealth,
    DriverInfo,
    DriverSettings,
    PaymentInstruction,
    PosPayment,
    Table,
)
from drivers.errors import (
    DriverConfigError,
    PaymentRefusedError,
    PosOfflineError,
    PosTimeoutError,
    UnknownTableError,
)
from drivers.options import int_option, reject_unknown
from drivers.simulator import model

__all__ = ["AcmeDriver"]

MODES = ("online", "offline", "lossy")


@dataclass
class _Device:
    """One ACME POS: its tables' bills, the payments it took, and its power switch."""

    tables: int
    bills: dict[tuple[str, int], Bill] = field(default_factory=dict)
    payments: dict[tuple[str, str], PosPayment] = field(default_factory=dict)
    mode: str = "online"

    def bill(self, location: str, table: int) -> Bill | None:
        if not 1 <= table <= self.tables:
            raise UnknownTableError(location, table)
        if (location, table) not in self.bills:  # seated on first look
            rng = random.Random(f"acme:{location}:{table}")
            now = datetime.now(UTC)
            self.bills[location, table] = model.make_bill(location, table, 1, now, rng, "AUD")
        bill = self.bills[location, table]
        return bill if bill.is_open else None


_DEVICES: dict[str, _Device] = {}


class AcmeDriver:
    """See the module docstring. Options: ``tables`` (default 20)."""

    info: ClassVar[DriverInfo] = DriverInfo(
        name="acme", version="0.1.0", description="ACME's in-memory test POS (example plugin)"
    )

    def __init__(self, settings: DriverSettings) -> None:
        if settings.url.netloc:
            raise DriverConfigError("url", "use acme: or acme:<name>, with no host")
        options: dict[str, Any] = dict(settings.options)
        self._name = settings.url.path or "default"
        self._tables = int_option(options, "tables", 20, 1, 999)
        reject_unknown(options)
        self._device: _Device | None = None

    async def open(self) -> None:
        self._device = _DEVICES.setdefault(self._name, _Device(self._tables))

    async def close(self) -> None:
        self._device = None  # the POS itself stays on

    def set_mode(self, mode: str) -> None:
        """Test switch: ``offline`` (unreachable) or ``lossy`` (answers lost)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        self._pos(check=False).mode = mode

    async def list_tables(self, location: str) -> list[Table]:
        device = self._pos()
        return [Table(n, f"Table {n}") for n in range(1, device.tables + 1)]

    async def get_open_bill(self, location: str, table: int) -> Bill | None:
        return self._pos().bill(location, table)

    async def apply_payment(self, instruction: PaymentInstruction) -> PosPayment:
        device = self._pos()
        bill = device.bills.get((instruction.location, instruction.table))
        if bill is None or bill.id != instruction.bill_ref:
            raise PaymentRefusedError("bill_not_found", f"no bill {instruction.bill_ref}")
        reference = f"ACME-{len(device.payments) + 1:06d}"
        paid = model.apply_payment(bill, instruction, reference, datetime.now(UTC))
        device.bills[instruction.location, instruction.table] = paid
        payment = PosPayment(
            instruction.payment_id,
            reference,
            paid.id,
            instruction.amount,
            instruction.tip,
            paid,
        )
        device.payments[instruction.location, instruction.payment_id] = payment
        if device.mode == "lossy":
            raise PosTimeoutError("ACME POS took the payment but its answer was lost")
        return payment

    async def find_payment(self, location: str, payment_id: str) -> PosPayment | None:
        return self._pos().payments.get((location, payment_id))

    async def health(self) -> DriverHealth:
        now = datetime.now(UTC)
        device = self._pos(check=False)
        if device.mode == "offline":
            return DriverHealth(False, "ACME POS is switched off", now)
        return DriverHealth(True, f"ACME POS {self._name!r} is on", now)

    def _pos(self, *, check: bool = True) -> _Device:
        if self._device is None:
            raise PosOfflineError("ACME driver is not open")
        if check and self._device.mode == "offline":
            raise PosOfflineError("ACME POS is switched off")
        return self._device
