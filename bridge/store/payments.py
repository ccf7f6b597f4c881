"""Payments (each row holding its replay record), their audit trail, the outbox and snapshots.

Methods are named after what the services mean (``record_payment``, ``claim_next``,
``save_transition``) and each is one transaction: a state change and its audit row are never
written apart.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from bridge.core.bill import Bill, bill_from_dict
from bridge.core.idempotency import StoredResponse
from bridge.core.limits import QueueExposure
from bridge.core.payment import AuditRecord, Payment, PaymentState
from bridge.store.database import Database
from bridge.store.rows import (
    IdempotencyHit,
    change_outbox,
    insert_audits,
    iso,
    parse_iso,
    read_idempotency,
    read_payment,
    response_text,
    row_to_payment,
    save_snapshot,
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

#: Replay records forgotten per write by :meth:`PaymentStore.prune_idempotency`.
PRUNE_CHUNK = 500


@dataclass(frozen=True, slots=True)
class OutboxClaim:
    payment: Payment
    attempts: int


@dataclass(frozen=True, slots=True)
class QueueStatus:
    depth: int
    oldest_queued_at: datetime | None
    needs_attention: int
    applying: int


class PaymentStore:
    """Intent-named persistence for the payment services."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writes --------------------------------------------------------------------------------

    async def record_payment(
        self,
        payment: Payment,
        audits: list[AuditRecord],
        request_hash: str,
        *,
        response: StoredResponse | None,
        outbox_at: datetime | None,
        claimed: bool,
        now: datetime,
    ) -> IdempotencyHit | None:
        """Insert a new payment with its audit rows and idempotency record, atomically.

        Returns:
            ``None`` if it was recorded; the earlier record if the id was already taken (then
            nothing is written).
        """

        def work(conn: sqlite3.Connection) -> IdempotencyHit | None:
            # The insert is the check: a taken id conflicts, and only then is its record read.
            inserted = conn.execute(
                "INSERT INTO payments (platform, id, location_id, table_no, bill_ref,"
                " bill_version, currency, amount, tip, label, state, pos_reference, created_at,"
                " updated_at, request_hash, answer_status, answer)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                (
                    payment.platform,
                    payment.id,
                    payment.location_id,
                    payment.table,
                    payment.bill_ref,
                    payment.bill_version,
                    payment.amount.currency,
                    payment.amount.minor,
                    payment.tip.minor,
                    payment.label,
                    str(payment.state),
                    payment.pos_reference,
                    iso(payment.created_at),
                    iso(payment.updated_at),
                    request_hash,
                    response.status if response else None,
                    response_text(response) if response else None,
                ),
            )
            if inserted.rowcount == 0:  # the payment exists: its replay record, or pruned
                hit = read_idempotency(conn, payment.platform, payment.id)
                return hit or IdempotencyHit("", None, expired=True)
            insert_audits(conn, payment, audits)
            if outbox_at is not None:
                conn.execute(
                    "INSERT INTO outbox (platform, payment_id, next_attempt_at, claimed_at)"
                    " VALUES (?,?,?,?)",
                    (payment.platform, payment.id, iso(outbox_at), iso(now) if claimed else None),
                )
            return None

        return await self.db.write(work)

    async def save_transition(
        self,
        payment: Payment,
        audit: AuditRecord,
        *,
        response: StoredResponse | None = None,
        outbox: str = "keep",
        next_attempt_at: datetime | None = None,
        error: str | None = None,
        bill: Bill | None = None,
    ) -> None:
        """Store ``payment``'s new state with its audit row, in one transaction.

        Args:
            response: the answer to keep for replays, if this change gives one.
            outbox: ``"keep"``, ``"remove"`` (done or given up) or ``"release"`` (retry at
                ``next_attempt_at``).
            bill: the bill as the POS returned it, kept as the table's latest snapshot.
        """

        def work(conn: sqlite3.Connection) -> None:
            key = (payment.platform, payment.id)
            if response is None:
                conn.execute(
                    "UPDATE payments SET state = ?, pos_reference = ?, updated_at = ?"
                    " WHERE platform = ? AND id = ?",
                    (str(payment.state), payment.pos_reference, iso(payment.updated_at), *key),
                )
            else:
                conn.execute(
                    "UPDATE payments SET state = ?, pos_reference = ?, updated_at = ?,"
                    " answer_status = ?, answer = ? WHERE platform = ? AND id = ?",
                    (
                        str(payment.state),
                        payment.pos_reference,
                        iso(payment.updated_at),
                        response.status,
                        response_text(response),
                        *key,
                    ),
                )
            insert_audits(conn, payment, [audit])
            change_outbox(conn, payment, outbox, next_attempt_at, error)
            if bill is not None:
                save_snapshot(conn, payment.location_id, bill, payment.updated_at)

        await self.db.write(work)

    async def claim_next(self, now: datetime, stale_before: datetime) -> OutboxClaim | None:
        """Claim the next due outbox entry (or one whose claimer died) for this worker.

        A payment applied on the request's own path has no outbox entry (two statements
        fewer per payment); if that path died without a trace (its task gone, its last write
        failed) the payment sits in ``applying`` past ``stale_before``, and is first given an
        entry here, so the worker asks the POS about it as about any stale claim.
        """

        def work(conn: sqlite3.Connection) -> OutboxClaim | None:
            conn.execute(
                "INSERT INTO outbox (platform, payment_id, next_attempt_at)"
                " SELECT platform, id, ? FROM payments WHERE state = ? AND updated_at < ?"
                " ON CONFLICT (platform, payment_id) DO NOTHING",
                (iso(now), PaymentState.APPLYING.value, iso(stale_before)),
            )
            row = conn.execute(
                "UPDATE outbox SET claimed_at = ?, attempts = attempts + 1 WHERE rowid = ("
                " SELECT rowid FROM outbox WHERE (claimed_at IS NULL AND next_attempt_at <= ?)"
                " OR claimed_at < ? ORDER BY next_attempt_at, rowid LIMIT 1)"
                " RETURNING platform, payment_id, attempts",
                (iso(now), iso(now), iso(stale_before)),
            ).fetchone()
            if row is None:
                return None
            payment = read_payment(conn, row["platform"], row["payment_id"])
            assert payment is not None  # the foreign key guarantees it
            return OutboxClaim(payment, row["attempts"])

        return await self.db.write(work)

    async def release_claim(self, payment: Payment, next_attempt_at: datetime, error: str) -> None:
        """Give a claim back without a state change (e.g. the POS is still unreachable)."""

        def work(conn: sqlite3.Connection) -> None:
            change_outbox(conn, payment, "release", next_attempt_at, error)

        await self.db.write(work)

    async def release_all_claims(self) -> int:
        """At start-up every claim belongs to a dead process; hand them all back."""

        def work(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "UPDATE outbox SET claimed_at = NULL WHERE claimed_at IS NOT NULL"
            ).rowcount

        return await self.db.write(work)

    async def make_due(self, now: datetime) -> int:
        """Every unclaimed entry becomes due now (the POS just came back)."""

        def work(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "UPDATE outbox SET next_attempt_at = ? WHERE claimed_at IS NULL AND"
                " next_attempt_at > ?",
                (iso(now), iso(now)),
            ).rowcount

        return await self.db.write(work)

    async def save_bill_snapshot(self, location_id: str, bill: Bill, now: datetime) -> None:
        def work(conn: sqlite3.Connection) -> None:
            save_snapshot(conn, location_id, bill, now)

        await self.db.write(work)

    async def prune_idempotency(self, before: datetime) -> int:
        """Forget replay answers of finished payments older than ``before``.

        Payments and their audit rows are kept; only the replay record goes. In chunks of
        :data:`PRUNE_CHUNK` rows, each its own write: a write's statements run on the event
        loop (``bridge/store/database.py``), so no prune holds it for long.
        """

        def work(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "UPDATE payments SET request_hash = NULL, answer_status = NULL, answer = NULL"
                " WHERE rowid IN (SELECT rowid FROM payments WHERE request_hash IS NOT NULL"
                " AND created_at < ? AND answer IS NOT NULL AND state IN ('applied', 'rejected')"
                " LIMIT ?)",
                (iso(before), PRUNE_CHUNK),
            ).rowcount

        removed = 0
        while (count := await self.db.write(work)) > 0:
            removed += count
            if count < PRUNE_CHUNK:
                break
        return removed

    # -- reads ---------------------------------------------------------------------------------

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

    async def answer_if_unanswered(self, payment: Payment, response: StoredResponse) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE payments SET answer_status = ?, answer = ? WHERE platform = ? AND"
                " id = ? AND request_hash IS NOT NULL AND answer IS NULL",
                (response.status, response_text(response), payment.platform, payment.id),
            )

        await self.db.write(work)

    async def bill_snapshot(self, location_id: str, table: int) -> tuple[Bill, datetime] | None:
        """The table's bill as last written, and when it was seen."""

        def work(conn: sqlite3.Connection) -> tuple[Bill, datetime] | None:
            row = conn.execute(
                "SELECT data, seen_at FROM bill_snapshots WHERE location_id = ? AND table_no = ?",
                (location_id, table),
            ).fetchone()
            return (bill_from_dict(json.loads(row[0])), parse_iso(row[1])) if row else None

        return await self.db.read(work)

    async def save_bill_snapshots(self, bills: list[tuple[str, Bill, datetime]]) -> None:
        """Deferred snapshots (location id, bill, seen at), in one transaction; each replaces
        only an older one."""

        def work(conn: sqlite3.Connection) -> None:
            for location_id, bill, seen_at in bills:
                save_snapshot(conn, location_id, bill, seen_at, newer_only=True)

        await self.db.write(work)

    async def applied_since(
        self, location_id: str, bill_ref: str, since: datetime
    ) -> dict[str, int]:
        """Payments on ``bill_ref`` applied on the POS and created at or after ``since``:
        id → amount. Off the hot path (a payment taken while the POS is away)."""

        def work(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(APPLIED_SINCE_SQL, (iso(since), location_id, bill_ref)).fetchall()
            return {row[0]: row[1] for row in rows}

        return await self.db.read(work)
