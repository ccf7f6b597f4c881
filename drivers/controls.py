"""An optional driver capability: run-time controls for a simulated or test POS.

Why a separate protocol, and not more methods on :class:`~drivers.base.PosDriver`: every
production driver would have to stub them, and the bridge's HTTP layer would have to know
which driver is "the simulator". Instead a driver that *can* play a POS going offline, slow or
failing, seat guests, add lines and take cash at the till simply has these methods; the
technician's admin API (``/api/drivers/{driver}/simulator...``) and ``pos-bridge sim`` work on
any driver that does (:func:`simulator_controls`), and answer 404 ``unknown_simulator`` for
one that does not. The simulator implements it; so can a vendor's test driver or a driver
over a POS emulator.

Pure, like ``drivers/base.py``: the types and the protocol only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bridge.core.bill import Bill, BillItem

#: Every mode a controllable POS may offer, as the admin API's ``mode`` field names them:
#: ``online``; ``offline`` (calls raise ``PosOfflineError``, nothing done); ``failing``
#: (calls raise ``PosUnavailableError``, nothing done); ``lossy`` (payments are applied, then
#: their answer is lost: ``PosTimeoutError``).
MODES = ("online", "offline", "failing", "lossy")


@dataclass(frozen=True, slots=True)
class ModeSetting:
    """The POS's mode and the latency added to each call, as they are after a change."""

    mode: str
    latency_ms: int


@runtime_checkable
class SimulatorControls(Protocol):
    """What a driver offers the technician to play its POS's failures and its staff.

    The table methods raise :class:`drivers.errors.DriverError` (``UnknownTableError``,
    ``PaymentRefusedError``...) when the POS would refuse; the admin API answers that with
    409 ``simulator_refused``.
    """

    def modes(self) -> frozenset[str]:
        """The modes of :data:`MODES` this POS can play (``online`` always among them).

        A mode outside these is a 400 ``invalid_field`` before :meth:`set_mode` is called.
        """
        ...

    def set_mode(self, mode: str, latency_ms: int | None = None) -> ModeSetting:
        """Switch to ``mode`` (one of :meth:`modes`); ``latency_ms`` ``None`` keeps it."""
        ...

    def open_new_bill(self, location: str, table: int) -> Bill:
        """Seat new guests: the table's open bill, or a fresh one if it has none."""
        ...

    def add_item(self, location: str, table: int, item: BillItem) -> Bill:
        """A waiter adds a line to the open bill (its version changes)."""
        ...

    def pay_at_till(self, location: str, table: int, amount: int) -> Bill:
        """Staff take ``amount`` (minor units) at the POS itself; the bill after it."""
        ...


def simulator_controls(driver: object) -> SimulatorControls | None:
    """The driver's controls if it offers them, else ``None``.

    Structural (``runtime_checkable``): a driver offers controls by having the methods, with
    no import of this module needed, as it implements ``PosDriver``.
    """
    return driver if isinstance(driver, SimulatorControls) else None
