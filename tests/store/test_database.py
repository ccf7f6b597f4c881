"""The SQLite store on real files: durability settings, group commit, append-only audit."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlite_utils

from bridge.core.bill import Bill, BillItem
from bridge.store.database import Database
from bridge.store.migrations import MIGRATIONS
from bridge.store.payment_reads import APPLIED_SINCE_SQL, PENDING_ON_BILL_SQL
from bridge.store.payments import PaymentStore


@pytest.fixture
async def db(tmp_path):
    database = Database(tmp_path / "bridge.sqlite3")
    await database.open()
    yield database
    await database.close()


async def test_wal_and_full_sync(db):
    assert await db.read(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"
    assert await db.read(lambda c: c.execute("PRAGMA synchronous").fetchone()[0]) == 2  # FULL


async def test_migrations_are_recorded_and_run_once(tmp_path, db):
    names = await db.read(
        lambda c: [r[0] for r in c.execute("SELECT name FROM _sqlite_migrations")]
    )
    assert names == [
        "0001_payments_audit_idempotency_outbox",
        "0002_replay_record_in_payments",
        "0003_pending_bill_index_plain_audit_seq",
        "0004_audit_index_in_payment_time_order",
        "0005_oauth_tokens",
        "0006_location_links",
    ]
    again = Database(tmp_path / "bridge.sqlite3")
    await again.open()
    await again.close()


async def test_concurrent_writes_share_commits_and_fail_alone(db):
    await db.write(lambda c: c.execute("CREATE TABLE t (x INTEGER UNIQUE)"))

    def insert(value):
        return lambda c: c.execute("INSERT INTO t VALUES (?)", (value,)).rowcount

    results = await asyncio.gather(
        *(db.write(insert(i)) for i in range(50)),
        db.write(insert(7)),
        return_exceptions=True,
    )
    assert results[:50] == [1] * 50
    assert isinstance(results[50], sqlite3.IntegrityError)  # the duplicate fails alone
    assert await db.read(lambda c: c.execute("SELECT COUNT(*) FROM t").fetchone()[0]) == 50
    assert db.batches < db.batched_writes  # several writes shared a commit


async def test_reads_on_the_thread_never_run_inside_a_batch(db):
    """A read queued behind a commit must not overlap the next batch's statements."""
    await db.write(lambda c: c.execute("CREATE TABLE t (x INTEGER)"))

    def insert(value):
        return lambda c: c.execute("INSERT INTO t VALUES (?)", (value,)).rowcount

    def look(c):
        return c.in_transaction, c.execute("SELECT COUNT(*) FROM t").fetchone()[0]

    calls = []
    for i in range(300):
        calls.append(db.write(insert(i)))
        if i % 10 == 0:
            calls.append(db.read(look))
    results = await asyncio.gather(*calls)
    reads = [r for r in results if isinstance(r, tuple)]
    assert len(reads) == 30
    assert not any(in_transaction for in_transaction, _ in reads)
    assert db.read_now(lambda c: c.execute("SELECT COUNT(*) FROM t").fetchone()[0]) == 300


async def test_close_commits_the_writes_already_asked_for(tmp_path):
    database = Database(tmp_path / "bridge.sqlite3")
    await database.open()
    await database.write(lambda c: c.execute("CREATE TABLE t (x INTEGER)"))
    writes = [
        asyncio.ensure_future(
            database.write(lambda c, i=i: c.execute("INSERT INTO t VALUES (?)", (i,)))
        )
        for i in range(40)
    ]
    await asyncio.sleep(0)  # each write is queued, none committed yet
    await database.close()
    assert all(w.done() and not w.exception() for w in writes)
    other = sqlite3.connect(tmp_path / "bridge.sqlite3")
    assert other.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 40
    other.close()


async def test_written_rows_are_in_the_file_when_write_returns(tmp_path, db):
    await db.write(lambda c: c.execute("CREATE TABLE t (x)"))
    await db.write(lambda c: c.execute("INSERT INTO t VALUES (1)"))
    other = sqlite3.connect(tmp_path / "bridge.sqlite3")
    assert other.execute("SELECT x FROM t").fetchall() == [(1,)]
    other.close()


async def test_audit_rows_cannot_be_changed_or_deleted(db):
    def setup(c):
        c.execute(
            "INSERT INTO payments VALUES ('loke','p','L',1,'B','v','AUD',1,0,'x','queued',"
            "NULL,'t','t','h',NULL,NULL)"
        )
        c.execute(
            "INSERT INTO payment_audit (platform, payment_id, payment_created_at, from_state,"
            " to_state, at, reason) VALUES ('loke','p','t',NULL,'received','t','r')"
        )

    await db.write(setup)
    for statement in ("UPDATE payment_audit SET reason = 'x'", "DELETE FROM payment_audit"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            await db.write(lambda c, s=statement: c.execute(s))


def migrated_until(
    path: Path, stop_before: str, *, foreign_keys: bool = False
) -> sqlite3.Connection:
    """A database file as an older bridge left it: migrated up to ``stop_before``."""
    conn = sqlite3.connect(path, isolation_level=None)
    if foreign_keys:
        conn.execute("PRAGMA foreign_keys=ON")
    MIGRATIONS.apply(sqlite_utils.Database(conn, execute_plugins=False), stop_before=stop_before)
    return conn


@contextlib.asynccontextmanager
async def opened(path: Path) -> AsyncIterator[Database]:
    """The database at ``path`` opened (so migrated) by the bridge, closed on leaving."""
    db = Database(path)
    await db.open()
    try:
        yield db
    finally:
        await db.close()


async def test_replay_records_move_into_their_payments_rows(tmp_path):
    # A database made before 0002: the replay record in its own idempotency table.
    path = tmp_path / "old.sqlite3"
    conn = migrated_until(path, "0002_replay_record_in_payments")
    for payment_id, state in (("answered", "applied"), ("waiting", "applying")):
        conn.execute(
            "INSERT INTO payments VALUES ('loke',?,'L',1,'B','v','AUD',1,0,'x',?,NULL,'t','t')",
            (payment_id, state),
        )
    conn.execute(
        "INSERT INTO idempotency VALUES ('loke','answered','h1',201,'{\"status\":\"applied\"}','t')"
    )
    conn.execute("INSERT INTO idempotency VALUES ('loke','waiting','h2',NULL,NULL,'t')")
    conn.close()

    async with opened(path) as db:
        rows = await db.read(
            lambda c: c.execute(
                "SELECT id, request_hash, answer_status, answer FROM payments ORDER BY id"
            ).fetchall()
        )
        tables = await db.read(
            lambda c: [r[0] for r in c.execute("SELECT name FROM sqlite_master")]
        )
    assert [tuple(r) for r in rows] == [
        ("answered", "h1", 201, '{"status":"applied"}'),
        ("waiting", "h2", None, None),
    ]
    assert "idempotency" not in tables


async def test_audit_rebuild_keeps_every_row_and_stays_append_only(tmp_path):
    # A database made before 0003: payment_audit with AUTOINCREMENT, a full payments_bill index.
    path = tmp_path / "old.sqlite3"
    conn = migrated_until(path, "0003_pending_bill_index_plain_audit_seq", foreign_keys=True)
    conn.execute(
        "INSERT INTO payments VALUES ('loke','p','L',1,'B','v','AUD',1,0,'x','applying',"
        "NULL,'t','t','h',NULL,NULL)"
    )
    for seq, (from_state, to_state) in ((3, (None, "received")), (8, ("received", "applying"))):
        conn.execute(
            "INSERT INTO payment_audit VALUES (?,'loke','p',?,?,'t','r')",
            (seq, from_state, to_state),
        )
    conn.close()

    async with opened(path) as db:
        rows = await db.read(
            lambda c: c.execute(
                "SELECT seq, platform, payment_id, from_state, to_state, at, reason"
                " FROM payment_audit"
            ).fetchall()
        )

        def add_audit(c: sqlite3.Connection) -> int | None:
            return c.execute(
                "INSERT INTO payment_audit (platform, payment_id, payment_created_at, from_state,"
                " to_state, at, reason) VALUES ('loke','p','t','applying','applied','t','r')"
                " RETURNING seq"
            ).fetchone()[0]

        next_seq = await db.write(add_audit)
        for statement in ("UPDATE payment_audit SET reason = 'x'", "DELETE FROM payment_audit"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                await db.write(lambda c, s=statement: c.execute(s))
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            await db.write(
                lambda c: c.execute(
                    "INSERT INTO payment_audit (platform, payment_id, payment_created_at,"
                    " to_state, at, reason) VALUES ('loke','nobody','t','received','t','r')"
                )
            )
    assert [tuple(r) for r in rows] == [
        (3, "loke", "p", None, "received", "t", "r"),
        (8, "loke", "p", "received", "applying", "t", "r"),
    ]
    assert next_seq == 9


async def test_audit_rows_learn_their_payments_creation_time_and_are_found_by_it(tmp_path):
    # A database made before 0004: the trail's index led with the (random) payment id.
    path = tmp_path / "old.sqlite3"
    conn = migrated_until(path, "0004_audit_index_in_payment_time_order")
    for payment_id, created in (("p", "2026-01-01T10:00:00.000000Z"), ("q", "2026-01-02")):
        conn.execute(
            "INSERT INTO payments VALUES ('loke',?,'L',1,'B','v','AUD',1,0,'x','applied',"
            "NULL,?,?,'h',NULL,NULL)",
            (payment_id, created, created),
        )
    for seq, payment_id, to_state in (
        (3, "p", "received"),
        (5, "q", "received"),
        (8, "p", "applied"),
    ):
        conn.execute(
            "INSERT INTO payment_audit VALUES (?,'loke',?,NULL,?,?,'r')",
            (seq, payment_id, to_state, "2026-01-03T00:00:00.000000+00:00"),
        )
    conn.close()

    async with opened(path) as db:
        rows = await db.read(
            lambda c: c.execute(
                "SELECT seq, payment_id, payment_created_at, to_state FROM payment_audit"
            ).fetchall()
        )
        trail = await PaymentStore(db).audit_trail("loke", "p")
        plan = await db.read(
            lambda c: " ".join(
                str(r[3])
                for r in c.execute(
                    "EXPLAIN QUERY PLAN SELECT seq FROM payment_audit WHERE payment_created_at = ?"
                    " AND platform = ? AND payment_id = ? ORDER BY seq",
                    ("t", "loke", "p"),
                )
            )
        )
        for statement in ("UPDATE payment_audit SET reason = 'x'", "DELETE FROM payment_audit"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                await db.write(lambda c, s=statement: c.execute(s))
    assert [tuple(r) for r in rows] == [
        (3, "p", "2026-01-01T10:00:00.000000Z", "received"),
        (5, "q", "2026-01-02", "received"),
        (8, "p", "2026-01-01T10:00:00.000000Z", "applied"),
    ]
    assert [str(a.to_state) for a in trail] == ["received", "applied"]
    assert "payment_audit_by_payment" in plan


async def test_pending_on_bill_reads_the_partial_index(db):
    plan = await db.read(
        lambda c: [
            row[3] for row in c.execute(f"EXPLAIN QUERY PLAN {PENDING_ON_BILL_SQL}", ("L", "B"))
        ]
    )
    assert any("payments_pending_on_bill" in step for step in plan), plan


async def test_applied_since_reads_the_index_by_creation_time(db):
    plan = await db.read(
        lambda c: [
            row[3]
            for row in c.execute(f"EXPLAIN QUERY PLAN {APPLIED_SINCE_SQL}", ("2026", "L", "B"))
        ]
    )
    assert any("payments_replay_by_age" in step for step in plan), plan


async def test_a_deferred_snapshot_never_replaces_a_newer_one(db):
    store = PaymentStore(db)
    t0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    older = Bill("B-1", 4, "AUD", (BillItem("Pizza", 1, 2600, "MP"),), t0, t0)
    newer = Bill("B-1", 4, "AUD", (BillItem("Pizza", 2, 2600, "MP"),), t0, t0)
    await store.save_bill_snapshot("L", newer, t0 + timedelta(seconds=2))
    await store.save_bill_snapshots([("L", older, t0 + timedelta(seconds=1))])
    assert await store.bill_snapshot("L", 4) == (newer, t0 + timedelta(seconds=2))
    await store.save_bill_snapshots([("L", older, t0 + timedelta(seconds=3))])
    assert await store.bill_snapshot("L", 4) == (older, t0 + timedelta(seconds=3))
