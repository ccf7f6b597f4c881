"""Rows: how payments (with their replay records), audit records and bills sit in SQLite.

Shared by the store's intent methods (``bridge/store/payments.py``); each function runs on
the connection it is given, inside the caller's transaction.

A state is written as ``str(state)``: a ``StrEnum`` member's ``str`` is its value, and costs a
third of ``.value`` (a Python-level property; timeit), which the hot path read several times
per payment.
"""

from __future__ import annotations

import functools
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from bridge.core.bill import Bill, bill_json_text
from bridge.core.idempotency import StoredResponse
from bridge.core.money import Money
from bridge.core.payment import AuditRecord, Payment, PaymentState

#: The last moment :func:`iso` wrote, and its text: one write stores the same ``now`` in
#: several columns and rows (payment, audit rows), so most calls repeat the one before.
_last_iso: tuple[datetime | None, str] = (None, "")
#: The last second :func:`iso` wrote (its fields, its text up to the microseconds): the
#: payments of one second share it, and formatting only the microseconds onto it costs less
#: than half of ``isoformat`` (0.69 against 1.53 µs, timeit).
_last_second: tuple[tuple[int, ...], str] = ((), "")


def iso(moment: datetime) -> str:
    """UTC, fixed width (microseconds always written), so stored times sort as text.

    The same text as ``isoformat(timespec="microseconds")`` of the moment in UTC.
    """
    global _last_iso, _last_second
    last, text = _last_iso
    if moment is last:
        return text
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    second = (utc.second, utc.minute, utc.hour, utc.day, utc.month, utc.year)
    known, prefix = _last_second
    if second != known:
        prefix = utc.isoformat(timespec="seconds")[:19]
        _last_second = (second, prefix)
    text = f"{prefix}.{utc.microsecond:06d}+00:00"
    _last_iso = (moment, text)
    return text


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


def response_text(response: StoredResponse) -> str:
    """A stored answer's body as JSON text (orjson: see ``common/responses.py``)."""
    return orjson.dumps(response.body).decode()


@dataclass(frozen=True, slots=True)
class IdempotencyHit:
    """A payment id seen before: its request's fingerprint and, once answered, the answer."""

    request_hash: str
    response: StoredResponse | None
    expired: bool = False


@functools.cache
def _insert_audits_sql(rows: int) -> str:
    """The ``INSERT`` of ``rows`` audit rows, made once per count: the same string object
    each time is cheaper for ``sqlite3``'s statement cache than a new one to hash."""
    placeholders = ",".join(["(?,?,?,?,?,?,?)"] * rows)
    return (
        "INSERT INTO payment_audit (platform, payment_id, payment_created_at, from_state,"
        f" to_state, at, reason) VALUES {placeholders}"
    )


def insert_audits(conn: sqlite3.Connection, payment: Payment, audits: list[AuditRecord]) -> None:
    """One ``INSERT`` with a row per audit record (one or two per write): a single statement
    is cheaper than ``executemany``'s per-row loop for so few rows. Each row carries its
    payment's ``created_at``, the lead of the index that finds a trail (migration 0004)."""
    if not audits:
        return
    values: list[object] = []
    created_at = iso(payment.created_at)
    for audit in audits:
        values += (
            payment.platform,
            audit.payment_id,
            created_at,
            str(audit.from_state) if audit.from_state else None,
            str(audit.to_state),
            iso(audit.at),
            audit.reason,
        )
    conn.execute(_insert_audits_sql(len(audits)), values)


def change_outbox(
    conn: sqlite3.Connection,
    payment: Payment,
    change: str,
    next_attempt_at: datetime | None,
    error: str | None,
) -> None:
    key = (payment.platform, payment.id)
    if change == "remove":
        conn.execute("DELETE FROM outbox WHERE platform = ? AND payment_id = ?", key)
    elif change == "release":
        when = iso(next_attempt_at or payment.updated_at)
        conn.execute(
            "INSERT INTO outbox (platform, payment_id, next_attempt_at, last_error)"
            " VALUES (?,?,?,?) ON CONFLICT (platform, payment_id) DO UPDATE SET"
            " claimed_at = NULL, next_attempt_at = excluded.next_attempt_at,"
            " last_error = excluded.last_error",
            (*key, when, error),
        )
    elif change != "keep":
        raise ValueError(f"unknown outbox change {change!r}")


_SAVE_SNAPSHOT = (
    "INSERT INTO bill_snapshots (location_id, table_no, bill_ref, data, seen_at)"
    " VALUES (?,?,?,?,?) ON CONFLICT (location_id, table_no) DO UPDATE SET"
    " bill_ref = excluded.bill_ref, data = excluded.data, seen_at = excluded.seen_at"
)


def save_snapshot(
    conn: sqlite3.Connection,
    location_id: str,
    bill: Bill,
    now: datetime,
    *,
    newer_only: bool = False,
) -> None:
    """The table's latest bill, seen at ``now``; with ``newer_only``, kept only if the stored
    one was seen earlier (a deferred snapshot must not replace one written since)."""
    sql = _SAVE_SNAPSHOT + " WHERE excluded.seen_at > seen_at" if newer_only else _SAVE_SNAPSHOT
    conn.execute(sql, (location_id, bill.table, bill.id, bill_json_text(bill), iso(now)))


def read_idempotency(
    conn: sqlite3.Connection, platform: str, payment_id: str
) -> IdempotencyHit | None:
    """The replay record of a payment id: ``None`` if the id is new, ``expired`` if pruned."""
    row = conn.execute(
        "SELECT request_hash, answer_status, answer FROM payments WHERE platform = ? AND id = ?",
        (platform, payment_id),
    ).fetchone()
    if row is None:
        return None
    if row[0] is None:
        return IdempotencyHit("", None, expired=True)
    response = StoredResponse(row[1], orjson.loads(row[2])) if row[2] is not None else None
    return IdempotencyHit(row[0], response)


def read_payment(conn: sqlite3.Connection, platform: str, payment_id: str) -> Payment | None:
    row = conn.execute(
        "SELECT * FROM payments WHERE platform = ? AND id = ?", (platform, payment_id)
    ).fetchone()
    return row_to_payment(row) if row else None


def row_to_payment(row: sqlite3.Row) -> Payment:
    currency = row["currency"]
    return Payment(
        id=row["id"],
        platform=row["platform"],
        location_id=row["location_id"],
        table=row["table_no"],
        bill_ref=row["bill_ref"],
        bill_version=row["bill_version"],
        amount=Money(row["amount"], currency),
        tip=Money(row["tip"], currency),
        label=row["label"],
        state=PaymentState(row["state"]),
        created_at=parse_iso(row["created_at"]),
        updated_at=parse_iso(row["updated_at"]),
        pos_reference=row["pos_reference"],
    )
