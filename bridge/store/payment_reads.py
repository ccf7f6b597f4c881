"""Payments, their audit trail, the queue and the bills kept: the reads.

Apart from the writes (``payments.py``) so that each module has one job; ``PaymentStore``
offers both. Reads run on the store's read connection (``Database.read``), or on the event
loop where the answer is one indexed row (``read_now``).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from bridge.core.bill import Bill, bill_from_dict
from bridge.core.limits import QueueExposure
from bridge.core.payment import AuditRecord, Payment, PaymentState
from bridge.store.database import Database
from bridge.store.rows import (
    IdempotencyHit,
    iso,
    parse_iso,
    read_idempotency,
    read_payment,
    row_to_payment,
)

_PENDING = (PaymentState.QUEUED.value, PaymentState.APPLYING.value)

#: The states are spelled in the text (they are ``_PENDING``): SQLite uses the partial index
#: ``payments_pending_on_bill`` (migration 0003) only when a query's text implies the index's
#: ``WHERE``, and a bound parameter proves nothing.
PENDING_ON_BILL_SQL = (
    "SELECT id, amount FROM payments WHERE location_id = ? AND bill_ref = ? AND"
    " state IN ('queued', 'applying')"
)

#: ``request_hash IS NOT NULL`` is spelled out for the same reason: it lets SQLite range-scan
#: ``payments_replay_by_age`` (``created_at``, every payment within the replay retention).
#: ``+state`` keeps it off ``payments_state``, which would walk every applied payment ever.
APPLIED_SINCE_SQL = (
    "SELECT id, amount FROM payments WHERE request_hash IS NOT NULL AND created_at >= ?"
    " AND location_id = ? AND bill_ref = ? AND +state = 'applied'"
)


@dataclass(frozen=True, slots=True)
class QueueStatus:
    depth: int
    oldest_queued_at: datetime | None
    needs_attention: int
    applying: int


class PaymentReads:
    """What the services and the technician's API read."""

    db: Database

    def idempotency(self, platform: str, payment_id: str) -> IdempotencyHit | None:
        """A key lookup, read inline (see :meth:`Database.read_now`)."""
        return self.db.read_now(lambda conn: read_idempotency(conn, platform, payment_id))

    async def get_payment(self, platform: str, payment_id: str) -> Payment | None:
        return await self.db.read(lambda conn: read_payment(conn, platform, payment_id))

    def pending_on_bill(self, location_id: str, bill_ref: str) -> dict[str, int]:
        """Payments accepted on ``bill_ref`` and not yet confirmed on the POS: id → amount."""

        def work(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(PENDING_ON_BILL_SQL, (location_id, bill_ref)).fetchall()
            return {row[0]: row[1] for row in rows}

        return self.db.read_now(work)

    async def exposure(self) -> QueueExposure:
        """What is queued for the POS, for the merchant's offline limits."""

        def work(conn: sqlite3.Connection) -> QueueExposure:
            rows = conn.execute(
                "SELECT currency, COUNT(*), SUM(amount + tip), MIN(created_at) FROM payments"
                " WHERE state IN (?, ?) GROUP BY currency",
                _PENDING,
            ).fetchall()
            oldest = min((r[3] for r in rows), default=None)
            return QueueExposure(
                count=sum(r[1] for r in rows),
                total_minor={r[0]: r[2] for r in rows},
                oldest_queued_at=parse_iso(oldest) if oldest else None,
            )

        return await self.db.read(work)

    async def queue_status(self) -> QueueStatus:
        def work(conn: sqlite3.Connection) -> QueueStatus:
            counts = dict(
                conn.execute(
                    "SELECT state, COUNT(*) FROM payments WHERE state IN (?, ?, ?) GROUP BY state",
                    (*_PENDING, PaymentState.NEEDS_ATTENTION.value),
                ).fetchall()
            )
            oldest = conn.execute(
                "SELECT MIN(created_at) FROM payments WHERE state IN (?, ?)", _PENDING
            ).fetchone()[0]
            return QueueStatus(
                depth=counts.get("queued", 0) + counts.get("applying", 0),
                oldest_queued_at=parse_iso(oldest) if oldest else None,
                needs_attention=counts.get("needs_attention", 0),
                applying=counts.get("applying", 0),
            )

        return await self.db.read(work)

    async def audit_trail(self, platform: str, payment_id: str) -> list[AuditRecord]:
        def work(conn: sqlite3.Connection) -> list[AuditRecord]:
            rows = conn.execute(
                "SELECT payment_id, from_state, to_state, at, reason FROM payment_audit"
                " WHERE payment_created_at = (SELECT created_at FROM payments"
                " WHERE platform = ? AND id = ?) AND platform = ? AND payment_id = ? ORDER BY seq",
                (platform, payment_id, platform, payment_id),
            ).fetchall()
            return [
                AuditRecord(
                    r[0],
                    PaymentState(r[1]) if r[1] else None,
                    PaymentState(r[2]),
                    parse_iso(r[3]),
                    r[4],
                )
                for r in rows
            ]

        return await self.db.read(work)

    async def payments_in_state(self, state: PaymentState, limit: int = 100) -> list[Payment]:
        def work(conn: sqlite3.Connection) -> list[Payment]:
            rows = conn.execute(
                "SELECT * FROM payments WHERE state = ? ORDER BY created_at LIMIT ?",
                (state.value, limit),
            ).fetchall()
            return [row_to_payment(r) for r in rows]

        return await self.db.read(work)

    async def unanswered_or_applying(self) -> list[Payment]:
        """Payments a dead process left mid-flight: applying, or never answered."""

        def work(conn: sqlite3.Connection) -> list[Payment]:
            rows = conn.execute(
                "SELECT * FROM payments WHERE state = ? OR (request_hash IS NOT NULL AND"
                " answer IS NULL)",
                (PaymentState.APPLYING.value,),
            ).fetchall()
            return [row_to_payment(r) for r in rows]

        return await self.db.read(work)

    async def bill_snapshot(self, location_id: str, table: int) -> tuple[Bill, datetime] | None:
        """The table's bill as last written, and when it was seen."""

        def work(conn: sqlite3.Connection) -> tuple[Bill, datetime] | None:
            row = conn.execute(
                "SELECT data, seen_at FROM bill_snapshots WHERE location_id = ? AND table_no = ?",
                (location_id, table),
            ).fetchone()
            return (bill_from_dict(json.loads(row[0])), parse_iso(row[1])) if row else None

        return await self.db.read(work)

    async def applied_since(
        self, location_id: str, bill_ref: str, since: datetime
    ) -> dict[str, int]:
        """Payments on ``bill_ref`` applied on the POS and created at or after ``since``:
        id → amount. Off the hot path (a payment taken while the POS is away)."""

        def work(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(APPLIED_SINCE_SQL, (iso(since), location_id, bill_ref)).fetchall()
            return {row[0]: row[1] for row in rows}

        return await self.db.read(work)
