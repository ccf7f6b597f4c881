"""The simulator driver: a POS in a SQLite file (or in memory), controllable at run time.

URL forms::

    simulator:                         in memory, gone when the bridge stops
    simulator:///var/lib/pos/sim.db    kept in that file, so "the POS" outlives a bridge crash

Options (``[drivers.<name>.options]``): ``tables`` (default 20), ``currency`` ("AUD"),
``seed`` (1), ``latency_ms`` (0). Every location is seeded on first use with ``tables``
tables, each with an open bill drawn from a small menu.

Modes, switched by the admin API or ``pos-bridge sim``: ``online``; ``offline`` (every call
raises :class:`PosOfflineError` and does nothing, as a POS that refuses connections);
``failing`` (every call raises :class:`PosUnavailableError` and does nothing, as a POS that
answers with errors); ``lossy`` (reads work, but a payment is applied and then its answer is
lost: :class:`PosTimeoutError`, so the bridge must reconcile with :meth:`find_payment`); plus
a latency added to every call.

The file uses WAL with ``synchronous=NORMAL``: it must survive the bridge process being
killed, which that guarantees, not the machine losing power. Its statements take well under a
millisecond, so they run on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import ClassVar, TypeVar

from bridge.core.bill import Bill, BillItem, bill_from_dict, bill_json_text
from bridge.core.money import CURRENCIES, Money
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
    PosUnavailableError,
    UnknownTableError,
)
from drivers.options import int_option, reject_unknown
from drivers.simulator import model
from drivers.simulator.schema import (
    INSERT_PAYMENT,
    MAX_UNWRITTEN,
    SCHEMA,
    pos_reference,
)

MODES = ("online", "offline", "failing", "lossy")

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
        self._path = url.path or ":memory:"
        # In memory the bill caches are the bills: writing their JSON to a :memory: database
        # nobody reads again only cost CPU. Tables and payments still go through SQLite.
        self._persist_bills = self._path != ":memory:"
        self._tables = int_option(options, "tables", 20, 1, 999)
        self._seed = int_option(options, "seed", 1, 0, 2**31)
        self._currency = str(options.pop("currency", "AUD"))
        if self._currency not in CURRENCIES:
            raise DriverConfigError("options.currency", f"unsupported currency {self._currency!r}")
        self.control = SimulatorMode(latency_ms=int_option(options, "latency_ms", 0, 0, 60_000))
        reject_unknown(options)
        self._db: sqlite3.Connection | None = None
        # Read-through caches of the file: this driver is the file's only writer, and
        # parsing a bill's JSON on every call was a fifth of a payment's CPU (bench/).
        self._bills: dict[str, Bill] = {}
        self._open_ids: dict[tuple[str, int], str | None] = {}
        self._table_numbers: dict[str, frozenset[int]] = {}
        self._last_seq: int | None = None  # the last payment's sequence number
        self._unwritten: list[tuple[object, ...]] = []  # in memory: rows not yet inserted

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._bills.clear()
        self._open_ids.clear()
        self._table_numbers.clear()
        self._last_seq = None
        self._unwritten.clear()

    # -- the driver interface ------------------------------------------------------------------

    async def list_tables(self, location: str) -> list[Table]:
        await self._enter()
        self._ensure_seeded(location)
        rows = self._conn.execute(
            "SELECT table_no, name FROM sim_tables WHERE location = ? ORDER BY table_no",
            (location,),
        ).fetchall()
        return self._leave([Table(number, name) for number, name in rows])

    async def get_open_bill(self, location: str, table: int) -> Bill | None:
        await self._enter()
        self._ensure_seeded(location)
        if not self._table_exists(location, table):
            raise UnknownTableError(location, table)
        return self._leave(self._open_bill(location, table))

    async def apply_payment(self, instruction: PaymentInstruction) -> PosPayment:
        await self._enter()
        db = self._conn
        now = datetime.now(UTC)
        # In memory the bills live in the caches and payment rows wait in a buffer, inserted
        # many at once when something reads them (find_payment, payments) or the buffer
        # fills: no statement on the bench's hot path. In a file, one transaction each.
        in_file = self._persist_bills
        if in_file:
            db.execute("BEGIN IMMEDIATE")
        try:
            bill = self._bill(instruction.location, instruction.bill_ref)
            if bill is None:
                raise PaymentRefusedError("bill_not_found", f"no bill {instruction.bill_ref}")
            if self._last_seq is None:  # this driver is the only writer: it numbers payments
                self._flush_payments()
                self._last_seq = db.execute(
                    "SELECT COALESCE(MAX(seq), 0) FROM sim_payments"
                ).fetchone()[0]
            seq = self._last_seq + 1
            reference = pos_reference(seq)
            paid = model.apply_payment(bill, instruction, reference, now)
            row = (
                seq,
                instruction.location,
                instruction.payment_id,
                bill.id,
                instruction.amount.minor,
                instruction.tip.minor,
                instruction.amount.currency,
                now.isoformat(),
            )
            if in_file:
                db.execute(INSERT_PAYMENT, row)
            else:
                self._unwritten.append(row)
                if len(self._unwritten) >= MAX_UNWRITTEN:
                    self._flush_payments()
            self._last_seq = seq
            self._save_bill(instruction.location, paid)
            if in_file:
                db.execute("COMMIT")
        except BaseException:
            if in_file:
                db.execute("ROLLBACK")
            self._forget()
            raise
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
        self._flush_payments()
        row = self._conn.execute(
            "SELECT seq, bill_id, amount, tip, currency FROM sim_payments"
            " WHERE location = ? AND payment_id = ? ORDER BY seq LIMIT 1",
            (location, payment_id),
        ).fetchone()
        if row is None:
            return self._leave(None)
        seq, bill_id, amount, tip, currency = row
        bill = self._bill(location, bill_id)
        return self._leave(
            PosPayment(
                payment_id,
                pos_reference(seq),
                bill_id,
                Money(amount, currency),
                Money(tip, currency),
                bill,
            )
        )

    async def health(self) -> DriverHealth:
        now = datetime.now(UTC)
        if self.control.mode == "offline":
            return DriverHealth(False, "simulated POS is offline", now)
        if self.control.mode == "failing":
            return DriverHealth(False, "simulated POS answers with errors", now)
        return DriverHealth(True, "simulated POS is online", now)

    # -- technician controls (admin API, CLI, tests) -------------------------------------------

    def set_mode(self, mode: str, latency_ms: int | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        self.control.mode = mode
        if latency_ms is not None:
            self.control.latency_ms = latency_ms

    def open_new_bill(self, location: str, table: int) -> Bill:
        """Seat new guests: close nothing, but open a fresh bill if the table has none."""
        self._ensure_seeded(location)
        if not self._table_exists(location, table):
            raise UnknownTableError(location, table)
        current = self._open_bill(location, table)
        if current is not None:
            return current
        rng = random.Random(f"{self._seed}:{location}:{table}:new")
        return self._new_bill(location, table, rng)

    def add_item(self, location: str, table: int, item: BillItem) -> Bill:
        """A waiter adds a line: the bill's charges (and so its version) change."""
        bill = self._open_bill(location, table)
        if bill is None:
            raise PaymentRefusedError("bill_closed", f"table {table} has no open bill")
        changed = replace(bill, items=(*bill.items, item), updated=datetime.now(UTC))
        self._save_bill(location, changed)
        return changed

    def pay_at_till(self, location: str, table: int, amount: int, label: str = "Cash") -> Bill:
        """Staff take a payment at the POS itself: the bridge hears of it only by re-reading."""
        bill = self._open_bill(location, table)
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
        self._save_bill(location, paid)
        return paid

    def payments(self, location: str) -> list[tuple[str, str, int, int]]:
        """Every payment the POS holds: (platform payment id, bill id, amount, tip)."""
        self._flush_payments()
        rows = self._conn.execute(
            "SELECT payment_id, bill_id, amount, tip FROM sim_payments WHERE location = ?"
            " ORDER BY seq",
            (location,),
        ).fetchall()
        return [tuple(r) for r in rows]

    # -- internals -------------------------------------------------------------------------

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise PosOfflineError("simulator is not open")
        return self._db

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

    def _forget(self) -> None:
        """Drop the caches after a rollback: the file is the truth.

        In memory the caches are the only copy of the bills, and every rollback happens
        before they change (a refusal is raised before the bill is saved).
        """
        if not self._persist_bills:
            return
        self._last_seq = None
        self._bills.clear()
        self._open_ids.clear()
        self._table_numbers.clear()

    def _flush_payments(self) -> None:
        """Insert the payment rows waiting in memory (see :meth:`apply_payment`)."""
        if self._unwritten:
            self._conn.executemany(INSERT_PAYMENT, self._unwritten)
            self._unwritten.clear()

    def _table_exists(self, location: str, table: int) -> bool:
        numbers = self._table_numbers.get(location)
        if numbers is None:
            rows = self._conn.execute(
                "SELECT table_no FROM sim_tables WHERE location = ?", (location,)
            ).fetchall()
            numbers = self._table_numbers[location] = frozenset(r[0] for r in rows)
        return table in numbers

    def _open_bill(self, location: str, table: int) -> Bill | None:
        key = (location, table)
        if key not in self._open_ids:
            row = self._conn.execute(
                "SELECT data FROM sim_bills WHERE location = ? AND table_no = ? AND open = 1",
                (location, table),
            ).fetchone()
            bill = bill_from_dict(json.loads(row[0])) if row else None
            self._open_ids[key] = bill.id if bill else None
            if bill is not None:
                self._bills[bill.id] = bill
        bill_id = self._open_ids[key]
        return self._bill(location, bill_id) if bill_id else None

    def _bill(self, location: str, bill_id: str) -> Bill | None:
        bill = self._bills.get(bill_id)
        if bill is None:
            row = self._conn.execute(
                "SELECT data FROM sim_bills WHERE id = ? AND location = ?", (bill_id, location)
            ).fetchone()
            if row is None:
                return None
            bill = self._bills[bill_id] = bill_from_dict(json.loads(row[0]))
        return bill

    def _save_bill(self, location: str, bill: Bill) -> None:
        if self._persist_bills:
            self._conn.execute(
                "INSERT INTO sim_bills (id, location, table_no, open, data) VALUES (?,?,?,?,?)"
                " ON CONFLICT (id) DO UPDATE SET open = excluded.open, data = excluded.data",
                (bill.id, location, bill.table, int(bill.is_open), bill_json_text(bill)),
            )
        self._bills[bill.id] = bill
        key = (location, bill.table)
        if bill.is_open:
            self._open_ids[key] = bill.id
        elif self._open_ids.get(key) == bill.id:
            self._open_ids[key] = None

    def _new_bill(self, location: str, table: int, rng: random.Random) -> Bill:
        db = self._conn
        db.execute(
            "INSERT INTO sim_serials (location, next_serial) VALUES (?, 1)"
            " ON CONFLICT (location) DO UPDATE SET next_serial = next_serial + 1",
            (location,),
        )
        (serial,) = db.execute(
            "SELECT next_serial FROM sim_serials WHERE location = ?", (location,)
        ).fetchone()
        bill = model.make_bill(location, table, serial, datetime.now(UTC), rng, self._currency)
        self._save_bill(location, bill)
        return bill

    def _ensure_seeded(self, location: str) -> None:
        db = self._conn
        if (
            self._table_numbers.get(location)
            or db.execute(
                "SELECT 1 FROM sim_tables WHERE location = ? LIMIT 1", (location,)
            ).fetchone()
        ):
            return
        rng = random.Random(f"{self._seed}:{location}")
        db.execute("BEGIN IMMEDIATE")
        try:
            for number in range(1, self._tables + 1):
                db.execute(
                    "INSERT INTO sim_tables VALUES (?, ?, ?)", (location, number, f"Table {number}")
                )
                self._new_bill(location, number, rng)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._forget()
            raise
        self._table_numbers.pop(location, None)
