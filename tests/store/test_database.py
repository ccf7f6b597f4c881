"""The SQLite store on real files: durability settings, group commit, append-only audit."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
import sqlite_utils

from bridge.store.database import Database
from bridge.store.migrations import MIGRATIONS


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
    assert names == ["0001_payments_audit_idempotency_outbox", "0002_replay_record_in_payments"]
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
            "INSERT INTO payment_audit (platform, payment_id, from_state, to_state, at,"
            " reason) VALUES ('loke','p',NULL,'received','t','r')"
        )

    await db.write(setup)
    for statement in ("UPDATE payment_audit SET reason = 'x'", "DELETE FROM payment_audit"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            await db.write(lambda c, s=statement: c.execute(s))


async def test_replay_records_move_into_their_payments_rows(tmp_path):
    # A database made before 0002: the replay record in its own idempotency table.
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS.apply(
        sqlite_utils.Database(conn, execute_plugins=False),
        stop_before="0002_replay_record_in_payments",
    )
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

    db = Database(path)
    await db.open()
    try:
        rows = await db.read(
            lambda c: c.execute(
                "SELECT id, request_hash, answer_status, answer FROM payments ORDER BY id"
            ).fetchall()
        )
        tables = await db.read(
            lambda c: [r[0] for r in c.execute("SELECT name FROM sqlite_master")]
        )
    finally:
        await db.close()
    assert [tuple(r) for r in rows] == [
        ("answered", "h1", 201, '{"status":"applied"}'),
        ("waiting", "h2", None, None),
    ]
    assert "idempotency" not in tables
