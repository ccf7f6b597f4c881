"""What the simulated POS knows: its tables, bills and payments, in SQLite, behind caches.

Kept apart from ``driver.py``, which is the driver interface, the run-time modes and the
technician's controls: this module is only the POS's records and how they are kept.

The file uses WAL with ``synchronous=NORMAL``: it must survive the bridge process being
killed, which that guarantees, not the machine losing power. Its statements take well under a
millisecond, so they run on the event loop.

Why caches: this book is the file's only writer, and parsing a bill's JSON on every call was a
fifth of a payment's CPU (bench/). In memory (``simulator:``) the caches *are* the bills:
writing their JSON to a database nobody reads again only cost CPU, and the payments are kept
in two dicts (by location, and each platform id's first payment): inserting their rows into
an in-memory table, even many at once, cost 21 µs per payment (py-spy, session 6).
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from bridge.core.bill import Bill, bill_from_dict, bill_json_text
from drivers.base import PaymentInstruction, Table
from drivers.errors import PosOfflineError, UnknownTableError
from drivers.simulator import model
from drivers.simulator.schema import INSERT_PAYMENT, SCHEMA

#: A payment row of ``sim_payments``: seq, location, payment id, bill id, amount, tip,
#: currency, applied at.
PaymentRow = tuple[int, str, str, str, int, int, str, str]


class PosBook:
    """The simulated POS's records; ``path`` is a file or ``":memory:"``."""

    def __init__(self, path: str, *, tables: int, seed: int, currency: str) -> None:
        self._path = path
        self._persist_bills = path != ":memory:"
        self._tables = tables
        self._seed = seed
        self._currency = currency
        self._db: sqlite3.Connection | None = None
        self._bills: dict[str, Bill] = {}
        self._open_ids: dict[tuple[str, int], str | None] = {}
        self._table_numbers: dict[str, frozenset[int]] = {}
        self._last_seq: int | None = None  # the last payment's sequence number
        # In memory only: each location's payments in order, and each platform id's first.
        self._held: dict[str, list[PaymentRow]] = {}
        self._first: dict[tuple[str, str], PaymentRow] = {}

    def open(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        self._db = db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._bills.clear()
        self._open_ids.clear()
        self._table_numbers.clear()
        self._last_seq = None
        self._held.clear()
        self._first.clear()

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise PosOfflineError("simulator is not open")
        return self._db

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One payment's changes, all or none. In a file, one SQLite transaction; after a
        rollback the caches are dropped, the file being the truth. In memory the caches are
        the only copy, and every refusal is raised before they change."""
        in_file = self._persist_bills
        db = self._conn
        if in_file:
            db.execute("BEGIN IMMEDIATE")
        try:
            yield
            if in_file:
                db.execute("COMMIT")
        except BaseException:
            if in_file:
                db.execute("ROLLBACK")
            self._forget()
            raise

    # -- tables and bills --------------------------------------------------------------------

    def tables(self, location: str) -> list[Table]:
        self._ensure_seeded(location)
        rows = self._conn.execute(
            "SELECT table_no, name FROM sim_tables WHERE location = ? ORDER BY table_no",
            (location,),
        ).fetchall()
        return [Table(number, name) for number, name in rows]

    def check_table(self, location: str, table: int) -> None:
        """Raise :class:`UnknownTableError` unless ``table`` exists (seeding the location)."""
        self._ensure_seeded(location)
        numbers = self._table_numbers.get(location)
        if numbers is None:
            rows = self._conn.execute(
                "SELECT table_no FROM sim_tables WHERE location = ?", (location,)
            ).fetchall()
            numbers = self._table_numbers[location] = frozenset(r[0] for r in rows)
        if table not in numbers:
            raise UnknownTableError(location, table)

    def open_bill(self, location: str, table: int) -> Bill | None:
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
        return self.bill(location, bill_id) if bill_id else None

    def bill(self, location: str, bill_id: str) -> Bill | None:
        bill = self._bills.get(bill_id)
        if bill is None:
            row = self._conn.execute(
                "SELECT data FROM sim_bills WHERE id = ? AND location = ?", (bill_id, location)
            ).fetchone()
            if row is None:
                return None
            bill = self._bills[bill_id] = bill_from_dict(json.loads(row[0]))
        return bill

    def save_bill(self, location: str, bill: Bill) -> None:
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

    def seat(self, location: str, table: int) -> Bill:
        """The table's open bill, or a fresh one drawn from the menu if it has none."""
        self.check_table(location, table)
        current = self.open_bill(location, table)
        if current is not None:
            return current
        return self._new_bill(
            location, table, random.Random(f"{self._seed}:{location}:{table}:new")
        )

    # -- payments ------------------------------------------------------------------------------

    def next_seq(self) -> int:
        """The sequence number the next payment gets (this book numbers them)."""
        if self._last_seq is None:
            self._last_seq = self._conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM sim_payments"
            ).fetchone()[0]
        return self._last_seq + 1

    def add_payment(
        self, seq: int, instruction: PaymentInstruction, bill_id: str, now: datetime
    ) -> None:
        """Record payment ``seq`` (from :meth:`next_seq`), inside :meth:`transaction`."""
        row: PaymentRow = (
            seq,
            instruction.location,
            instruction.payment_id,
            bill_id,
            instruction.amount.minor,
            instruction.tip.minor,
            instruction.amount.currency,
            now.isoformat(),
        )
        if self._persist_bills:
            self._conn.execute(INSERT_PAYMENT, row)
        else:
            self._held.setdefault(instruction.location, []).append(row)
            self._first.setdefault((instruction.location, instruction.payment_id), row)
        self._last_seq = seq

    def find_payment(self, location: str, payment_id: str) -> tuple[int, str, int, int, str] | None:
        """The first payment with this platform id: seq, bill id, amount, tip, currency."""
        if not self._persist_bills:
            held = self._first.get((location, payment_id))
            return None if held is None else (held[0], held[3], held[4], held[5], held[6])
        row = self._conn.execute(
            "SELECT seq, bill_id, amount, tip, currency FROM sim_payments"
            " WHERE location = ? AND payment_id = ? ORDER BY seq LIMIT 1",
            (location, payment_id),
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3], row[4])

    def payments(self, location: str) -> list[tuple[str, str, int, int]]:
        """Every payment held: (platform payment id, bill id, amount, tip), in order."""
        if not self._persist_bills:
            return [(r[2], r[3], r[4], r[5]) for r in self._held.get(location, [])]
        rows = self._conn.execute(
            "SELECT payment_id, bill_id, amount, tip FROM sim_payments WHERE location = ?"
            " ORDER BY seq",
            (location,),
        ).fetchall()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    # -- internals -------------------------------------------------------------------------

    def _forget(self) -> None:
        """Drop the caches after a rollback: the file is the truth. In memory the caches are
        the only copy of the bills, and every rollback happens before they change."""
        if not self._persist_bills:
            return
        self._last_seq = None
        self._bills.clear()
        self._open_ids.clear()
        self._table_numbers.clear()

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
        self.save_bill(location, bill)
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
