"""Payments (each row holding its replay record), their audit trail, the outbox and snapshots:
the writes.

Methods are named after what the services mean (``record_payment``, ``claim_next``,
``save_transition``) and each is one transaction: a state change and its audit row are never
written apart.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from bridge.core.bill import Bill
from bridge.core.idempotency import StoredResponse
from bridge.core.payment import AuditRecord, Payment, PaymentState
from bridge.store.database import Database
from bridge.store.payment_reads import PaymentReads
from bridge.store.rows import (
    IdempotencyHit,
    change_outbox,
    insert_audits,
    iso,
    read_idempotency,
    read_payment,
    response_text,
    save_snapshot,
)

#: Replay records forgotten per write by :meth:`PaymentStore.prune_idempotency`.
PRUNE_CHUNK = 500


@dataclass(frozen=True, slots=True)
class OutboxClaim:
    payment: Payment
    attempts: int


class PaymentStore(PaymentReads):
    """Intent-named persistence for the payment services: the writes, each one transaction
    (the reads are :class:`PaymentReads`')."""

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

    async def answer_if_unanswered(self, payment: Payment, response: StoredResponse) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE payments SET answer_status = ?, answer = ? WHERE platform = ? AND"
                " id = ? AND request_hash IS NOT NULL AND answer IS NULL",
                (response.status, response_text(response), payment.platform, payment.id),
            )

        await self.db.write(work)

    async def save_bill_snapshots(self, bills: list[tuple[str, Bill, datetime]]) -> None:
        """Deferred snapshots (location id, bill, seen at), in one transaction; each replaces
        only an older one."""

        def work(conn: sqlite3.Connection) -> None:
            for location_id, bill, seen_at in bills:
                save_snapshot(conn, location_id, bill, seen_at, newer_only=True)

        await self.db.write(work)
