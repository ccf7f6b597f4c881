"""The simulator driver: a POS in a SQLite file (or in memory), controllable at run time.

URL forms::

    simulator:                         in memory, gone when the bridge stops
    simulator:///var/lib/pos/sim.db    kept in that file, so "the POS" outlives a bridge crash

Options (``[drivers.<name>.options]``): ``tables`` (default 20), ``currency`` ("AUD"),
``seed`` (1), ``latency_ms`` (0). Every location is seeded on first use with ``tables``
tables, each with an open bill drawn from a small menu.

Modes, switched by the admin API or ``pos-bridge sim`` through its technician's controls
(:class:`~drivers.controls.SimulatorControls`; it offers every mode): ``online``; ``offline``
(every call raises :class:`PosOfflineError` and does nothing, as a POS that refuses
connections); ``failing`` (every call raises :class:`PosUnavailableError` and does nothing,
as a POS that answers with errors); ``lossy`` (reads work, but a payment is applied and then
its answer is lost: :class:`PosTimeoutError`, so the bridge must reconcile with
:meth:`find_payment`); plus a latency added to every call.

Its records (tables, bills, payments, in SQLite behind caches) are ``book.py``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar, TypeVar

from bridge.core.bill import Bill, BillItem
from bridge.core.money import CURRENCIES, Money
from drivers.base import (
    DriverHealth,
    DriverInfo,
    DriverSettings,
    PaymentInstruction,
    PosPayment,
    Table,
)
from drivers.controls import MODES, ModeSetting, SimulatorControls
from drivers.errors import (
    DriverConfigError,
    PaymentRefusedError,
    PosOfflineError,
    PosTimeoutError,
    PosUnavailableError,
)
from drivers.options import int_option, reject_unknown
from drivers.simulator import model
from drivers.simulator.book import PosBook
from drivers.simulator.schema import pos_reference

_T = TypeVar("_T")


@dataclass(slots=True)
class SimulatorMode:
    mode: str = "online"
    latency_ms: int = 0


class SimulatorDriver:
    """A POS that lives in SQLite; see the module docstring."""

    info: ClassVar[DriverInfo] = DriverInfo(
        name="simulator",
        version="1.0",
        description="Simulated POS with tables and open bills; can go offline, slow or failing.",
    )

    def __init__(self, settings: DriverSettings) -> None:
        url, options = settings.url, dict(settings.options)
        if url.netloc not in ("", "memory"):
            raise DriverConfigError("url", f"unexpected host {url.netloc!r}; use simulator:///path")
        tables = int_option(options, "tables", 20, 1, 999)
        seed = int_option(options, "seed", 1, 0, 2**31)
        currency = str(options.pop("currency", "AUD"))
        if currency not in CURRENCIES:
            raise DriverConfigError("options.currency", f"unsupported currency {currency!r}")
        self.control = SimulatorMode(latency_ms=int_option(options, "latency_ms", 0, 0, 60_000))
        reject_unknown(options)
        self._book = PosBook(url.path or ":memory:", tables=tables, seed=seed, currency=currency)

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        self._book.open()

    async def close(self) -> None:
        self._book.close()

    # -- the driver interface ------------------------------------------------------------------

    async def list_tables(self, location: str) -> list[Table]:
        await self._enter()
        return self._leave(self._book.tables(location))

    async def get_open_bill(self, location: str, table: int) -> Bill | None:
        await self._enter()
        self._book.check_table(location, table)
        return self._leave(self._book.open_bill(location, table))

    async def apply_payment(self, instruction: PaymentInstruction) -> PosPayment:
        await self._enter()
        book = self._book
        now = datetime.now(UTC)
        with book.transaction():
            bill = book.bill(instruction.location, instruction.bill_ref)
            if bill is None:
                raise PaymentRefusedError("bill_not_found", f"no bill {instruction.bill_ref}")
            seq = book.next_seq()
            reference = pos_reference(seq)
            paid = model.apply_payment(bill, instruction, reference, now)
            book.add_payment(seq, instruction, bill.id, now)
            book.save_bill(instruction.location, paid)
        return self._leave(
            PosPayment(
                instruction.payment_id,
                reference,
                paid.id,
                instruction.amount,
                instruction.tip,
                paid,
            ),
            wrote=True,
        )

    async def find_payment(self, location: str, payment_id: str) -> PosPayment | None:
        await self._enter()
        found = self._book.find_payment(location, payment_id)
        if found is None:
            return self._leave(None)
        seq, bill_id, amount, tip, currency = found
        return self._leave(
            PosPayment(
                payment_id,
                pos_reference(seq),
                bill_id,
                Money(amount, currency),
                Money(tip, currency),
                self._book.bill(location, bill_id),
            )
        )

    async def health(self) -> DriverHealth:
        now = datetime.now(UTC)
        if self.control.mode == "offline":
            return DriverHealth(False, "simulated POS is offline", now)
        if self.control.mode == "failing":
            return DriverHealth(False, "simulated POS answers with errors", now)
        return DriverHealth(True, "simulated POS is online", now)

    # -- technician controls: drivers.controls.SimulatorControls (admin API, CLI, tests) ------

    def modes(self) -> frozenset[str]:
        return frozenset(MODES)

    def set_mode(self, mode: str, latency_ms: int | None = None) -> ModeSetting:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        self.control.mode = mode
        if latency_ms is not None:
            self.control.latency_ms = latency_ms
        return ModeSetting(self.control.mode, self.control.latency_ms)

    def open_new_bill(self, location: str, table: int) -> Bill:
        """Seat new guests: close nothing, but open a fresh bill if the table has none."""
        return self._book.seat(location, table)

    def add_item(self, location: str, table: int, item: BillItem) -> Bill:
        """A waiter adds a line: the bill's charges (and so its version) change."""
        bill = self._book.open_bill(location, table)
        if bill is None:
            raise PaymentRefusedError("bill_closed", f"table {table} has no open bill")
        changed = replace(bill, items=(*bill.items, item), updated=datetime.now(UTC))
        self._book.save_bill(location, changed)
        return changed

    def pay_at_till(self, location: str, table: int, amount: int, label: str = "Cash") -> Bill:
        """Staff take a payment at the POS itself: the bridge hears of it only by re-reading."""
        bill = self._book.open_bill(location, table)
        if bill is None:
            raise PaymentRefusedError("bill_closed", f"table {table} has no open bill")
        now = datetime.now(UTC)
        paid = model.apply_payment(
            bill,
            PaymentInstruction(
                f"till-{now.timestamp()}",
                location,
                table,
                bill.id,
                Money(amount, bill.currency),
                Money(0, bill.currency),
                label,
            ),
            "TILL",
            now,
        )
        self._book.save_bill(location, paid)
        return paid

    def payments(self, location: str) -> list[tuple[str, str, int, int]]:
        """Every payment the POS holds: (platform payment id, bill id, amount, tip)."""
        return self._book.payments(location)

    # -- internals -------------------------------------------------------------------------

    async def _enter(self) -> None:
        if self.control.latency_ms:
            await asyncio.sleep(self.control.latency_ms / 1000)
        if self.control.mode == "offline":
            raise PosOfflineError("simulated POS is offline")
        if self.control.mode == "failing":
            raise PosUnavailableError("simulated POS answered with an error")

    def _leave(self, result: _T, *, wrote: bool = False) -> _T:
        if wrote and self.control.mode == "lossy":
            raise PosTimeoutError("simulated POS applied it, but the answer was lost")
        return result


if TYPE_CHECKING:  # mypy proves here that the simulator offers every control (else: an error)
    _OFFERS_CONTROLS: type[SimulatorControls] = SimulatorDriver
