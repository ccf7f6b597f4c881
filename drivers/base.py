"""The one interface every POS driver implements (``drivers/registry.py`` finds them).

Pure: the types a driver speaks in, and the :class:`PosDriver` protocol. A driver is named by
the scheme of its URL (``simulator:``, ``serial:``, ``tcp:``, ``file:``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable
from urllib.parse import SplitResult

from bridge.core.bill import Bill
from bridge.core.money import Money


@dataclass(frozen=True, slots=True)
class DriverInfo:
    """What a driver is, readable before it opens anything."""

    name: str
    version: str
    description: str


@dataclass(frozen=True, slots=True)
class DriverSettings:
    """A driver's slice of the config: its name, parsed URL and free-form options."""

    name: str
    url: SplitResult
    options: Mapping[str, Any] = field(default_factory=dict)
    data_dir: Path = Path(".")


@dataclass(frozen=True, slots=True)
class Table:
    number: int
    name: str


@dataclass(frozen=True, slots=True)
class PaymentInstruction:
    """A payment for the POS to put on a bill. ``payment_id`` is the platform's id."""

    payment_id: str
    location: str
    table: int
    bill_ref: str
    amount: Money
    tip: Money
    label: str


@dataclass(frozen=True, slots=True)
class PosPayment:
    """A payment as the POS holds it; ``bill`` is the bill after it, when the POS says."""

    payment_id: str
    pos_reference: str
    bill_ref: str
    amount: Money
    tip: Money
    bill: Bill | None = None


@dataclass(frozen=True, slots=True)
class DriverHealth:
    online: bool
    detail: str = ""
    checked_at: datetime | None = None


@runtime_checkable
class PosDriver(Protocol):
    """What the bridge needs from a POS.

    Every method may raise :class:`drivers.errors.PosUnavailableError`. ``apply_payment``
    need not be idempotent: the bridge calls :meth:`find_payment` first whenever a payment
    may already have landed, which is what makes recovery after a crash safe.
    """

    info: ClassVar[DriverInfo]

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def list_tables(self, location: str) -> list[Table]: ...

    async def get_open_bill(self, location: str, table: int) -> Bill | None:
        """The table's single open bill, or ``None``.

        Raises:
            UnknownTableError: no such table at ``location``.
        """
        ...

    async def apply_payment(self, instruction: PaymentInstruction) -> PosPayment:
        """Put the payment on the bill; close the bill if its balance reaches zero.

        Raises:
            PaymentRefusedError: the POS will never accept it (bill closed, overpaid…).
            PosOfflineError: not delivered. PosTimeoutError: outcome unknown.
        """
        ...

    async def find_payment(self, location: str, payment_id: str) -> PosPayment | None: ...

    async def health(self) -> DriverHealth: ...


class DriverFactory(Protocol):
    info: ClassVar[DriverInfo]

    def __call__(self, settings: DriverSettings) -> PosDriver: ...
