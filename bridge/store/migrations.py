"""Named schema migrations; each commits together with the record that it ran."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("pos_bridge")


@MIGRATIONS(name="0001_payments_audit_idempotency_outbox")
def _initial(db: Database) -> None:
    # payment_audit is append-only: its triggers refuse UPDATE and DELETE.
    for statement in _split(
        """
        CREATE TABLE payments (
            platform TEXT NOT NULL,
            id TEXT NOT NULL,
            location_id TEXT NOT NULL,
            table_no INTEGER NOT NULL,
            bill_ref TEXT NOT NULL,
            bill_version TEXT NOT NULL,
            currency TEXT NOT NULL,
            amount INTEGER NOT NULL CHECK (amount > 0),
            tip INTEGER NOT NULL CHECK (tip >= 0),
            label TEXT NOT NULL,
            state TEXT NOT NULL,
            pos_reference TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (platform, id)
        );
        CREATE INDEX payments_state ON payments (state);
        CREATE INDEX payments_bill ON payments (location_id, bill_ref, state);

        CREATE TABLE payment_audit (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            platform TEXT NOT NULL,
            payment_id TEXT NOT NULL,
            from_state TEXT,
            to_state TEXT NOT NULL,
            at TEXT NOT NULL,
            reason TEXT NOT NULL,
            FOREIGN KEY (platform, payment_id) REFERENCES payments (platform, id)
        );
        CREATE INDEX payment_audit_payment ON payment_audit (platform, payment_id, seq);
        CREATE TRIGGER payment_audit_no_update BEFORE UPDATE ON payment_audit
            BEGIN SELECT RAISE(ABORT, 'payment_audit is append-only'); END;
        CREATE TRIGGER payment_audit_no_delete BEFORE DELETE ON payment_audit
            BEGIN SELECT RAISE(ABORT, 'payment_audit is append-only'); END;

        CREATE TABLE idempotency (
            platform TEXT NOT NULL,
            payment_id TEXT NOT NULL,
            request_hash TEXT NOT NULL,
            status INTEGER,
            response TEXT,
            created_at TEXT NOT NULL,
            PRIMARY KEY (platform, payment_id)
        );
        CREATE INDEX idempotency_created ON idempotency (created_at);

        CREATE TABLE outbox (
            platform TEXT NOT NULL,
            payment_id TEXT NOT NULL,
            next_attempt_at TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            claimed_at TEXT,
            last_error TEXT,
            PRIMARY KEY (platform, payment_id),
            FOREIGN KEY (platform, payment_id) REFERENCES payments (platform, id)
        );
        CREATE INDEX outbox_due ON outbox (claimed_at, next_attempt_at);

        CREATE TABLE bill_snapshots (
            location_id TEXT NOT NULL,
            table_no INTEGER NOT NULL,
            bill_ref TEXT NOT NULL,
            data TEXT NOT NULL,
            seen_at TEXT NOT NULL,
            PRIMARY KEY (location_id, table_no)
        );
        """
    ):
        db.execute(statement)


@MIGRATIONS(name="0002_replay_record_in_payments")
def _replay_record_in_payments(db: Database) -> None:
    # The replay record (request fingerprint, stored answer) moves into the payment's own row:
    # a payment then writes one row, not two, and its answer goes in the same UPDATE as its
    # state (two statements and three B-trees fewer per payment; bench/). A pruned record is
    # a NULL ``request_hash``; ``payments_replay_by_age`` serves the prune and start-up.
    for statement in _split(
        """
        ALTER TABLE payments ADD COLUMN request_hash TEXT;
        ALTER TABLE payments ADD COLUMN answer_status INTEGER;
        ALTER TABLE payments ADD COLUMN answer TEXT;
        UPDATE payments SET
            request_hash = (SELECT i.request_hash FROM idempotency i
                WHERE i.platform = payments.platform AND i.payment_id = payments.id),
            answer_status = (SELECT i.status FROM idempotency i
                WHERE i.platform = payments.platform AND i.payment_id = payments.id),
            answer = (SELECT i.response FROM idempotency i
                WHERE i.platform = payments.platform AND i.payment_id = payments.id);
        DROP TABLE idempotency;
        CREATE INDEX payments_replay_by_age ON payments (created_at)
            WHERE request_hash IS NOT NULL;
        """
    ):
        db.execute(statement)


@MIGRATIONS(name="0003_pending_bill_index_plain_audit_seq")
def _pending_bill_index_plain_audit_seq(db: Database) -> None:
    # Two B-tree writes fewer per payment, measured by callgrind (bench/):
    # - ``pending_on_bill`` asks only for queued and applying payments, so its index holds
    #   only those: a payment enters it when recorded and leaves it once applied, and the
    #   index stays a page or two however many payments the file keeps (the old full index
    #   grew by a row per payment and was rewritten on every state change).
    # - ``AUTOINCREMENT`` read and rewrote ``sqlite_sequence`` on every audit insert; it only
    #   differs from a plain ``INTEGER PRIMARY KEY`` once the highest row has been deleted,
    #   and the triggers refuse deletes, so ``seq`` still only grows. The table is rebuilt
    #   (SQLite cannot drop AUTOINCREMENT in place); every row keeps its ``seq``.
    for statement in _split(
        """
        DROP INDEX payments_bill;
        CREATE INDEX payments_pending_on_bill ON payments (location_id, bill_ref)
            WHERE state IN ('queued', 'applying');

        CREATE TABLE payment_audit_rebuilt (
            seq INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            payment_id TEXT NOT NULL,
            from_state TEXT,
            to_state TEXT NOT NULL,
            at TEXT NOT NULL,
            reason TEXT NOT NULL,
            FOREIGN KEY (platform, payment_id) REFERENCES payments (platform, id)
        );
        INSERT INTO payment_audit_rebuilt (seq, platform, payment_id, from_state, to_state, at,
            reason) SELECT seq, platform, payment_id, from_state, to_state, at, reason
            FROM payment_audit ORDER BY seq;
        DROP TABLE payment_audit;
        ALTER TABLE payment_audit_rebuilt RENAME TO payment_audit;
        CREATE INDEX payment_audit_payment ON payment_audit (platform, payment_id, seq);
        CREATE TRIGGER payment_audit_no_update BEFORE UPDATE ON payment_audit
            BEGIN SELECT RAISE(ABORT, 'payment_audit is append-only'); END;
        CREATE TRIGGER payment_audit_no_delete BEFORE DELETE ON payment_audit
            BEGIN SELECT RAISE(ABORT, 'payment_audit is append-only'); END;
        """
    ):
        db.execute(statement)


@MIGRATIONS(name="0004_audit_index_in_payment_time_order")
def _audit_index_in_payment_time_order(db: Database) -> None:
    # Each audit row also names its payment's ``created_at``, and the index that finds a
    # payment's trail leads with it: ``(payment_created_at, platform, payment_id, seq)``.
    # Why: the old index led with the platform's payment id, which is random, so every audit
    # row landed on a random leaf of an index as large as the table, and each commit wrote
    # one more 4 KiB page per row to the WAL. New payments' rows now all land on the last
    # leaves. Measured with the store's own payments (64 at a time, 20,000): WAL and
    # checkpoint bytes 23 → 9 KiB per payment, commit time 150 → 70 µs per payment.
    # Foreign-key checks need no index on the child columns here: payments' keys are never
    # updated and payments are never deleted. The table is rebuilt (``NOT NULL`` without a
    # default cannot be added in place); every row keeps its ``seq``.
    for statement in _split(
        """
        CREATE TABLE payment_audit_rebuilt (
            seq INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            payment_id TEXT NOT NULL,
            payment_created_at TEXT NOT NULL,
            from_state TEXT,
            to_state TEXT NOT NULL,
            at TEXT NOT NULL,
            reason TEXT NOT NULL,
            FOREIGN KEY (platform, payment_id) REFERENCES payments (platform, id)
        );
        INSERT INTO payment_audit_rebuilt (seq, platform, payment_id, payment_created_at,
            from_state, to_state, at, reason)
            SELECT a.seq, a.platform, a.payment_id, p.created_at, a.from_state, a.to_state,
            a.at, a.reason FROM payment_audit a JOIN payments p
            ON p.platform = a.platform AND p.id = a.payment_id ORDER BY a.seq;
        DROP TABLE payment_audit;
        ALTER TABLE payment_audit_rebuilt RENAME TO payment_audit;
        CREATE INDEX payment_audit_by_payment
            ON payment_audit (payment_created_at, platform, payment_id, seq);
        CREATE TRIGGER payment_audit_no_update BEFORE UPDATE ON payment_audit
            BEGIN SELECT RAISE(ABORT, 'payment_audit is append-only'); END;
        CREATE TRIGGER payment_audit_no_delete BEFORE DELETE ON payment_audit
            BEGIN SELECT RAISE(ABORT, 'payment_audit is append-only'); END;
        """
    ):
        db.execute(statement)


@MIGRATIONS(name="0005_oauth_tokens")
def _oauth_tokens(db: Database) -> None:
    # OAuth tokens per platform account (for LOKE: per organisation). ``state`` is
    # ``reauthorise`` once the refresh token was refused: no refresh is tried again until a
    # new code flow writes the row anew. ``expires_at`` is the access token's, in seconds
    # since the epoch.
    for statement in _split(
        """
        CREATE TABLE oauth_tokens (
            platform TEXT NOT NULL,
            account TEXT NOT NULL,
            access_token TEXT NOT NULL,
            refresh_token TEXT,
            expires_at REAL NOT NULL,
            scope TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL CHECK (state IN ('ok', 'reauthorise')),
            reason TEXT NOT NULL DEFAULT '',
            updated_at TEXT NOT NULL,
            PRIMARY KEY (platform, account)
        );
        """
    ):
        db.execute(statement)


@MIGRATIONS(name="0006_location_links")
def _location_links(db: Database) -> None:
    # A platform's location linked on the technician's page (not in the config file). A row
    # outlives its unlinking (``unlinked_at``): payments still queued for the location find
    # its driver through it, and the page shows what was withdrawn and when.
    for statement in _split(
        """
        CREATE TABLE location_links (
            platform TEXT NOT NULL,
            location_id TEXT NOT NULL,
            account TEXT NOT NULL,
            name TEXT NOT NULL,
            driver TEXT NOT NULL,
            pos_location TEXT NOT NULL,
            auth_scheme TEXT NOT NULL,
            secret TEXT NOT NULL,
            linked_at TEXT NOT NULL,
            unlinked_at TEXT,
            tables TEXT,
            tables_published_at TEXT,
            urls_registered_at TEXT,
            last_error TEXT,
            PRIMARY KEY (platform, location_id)
        );
        """
    ):
        db.execute(statement)


def _split(script: str) -> list[str]:
    """Statements of ``script``; ``executescript`` would commit the migration's transaction.

    Trigger bodies end in ``END;``, so a statement ends at a ``;`` that closes a line and is
    not inside ``BEGIN`` … ``END``.
    """
    statements, current = [], []
    for line in script.strip().splitlines():
        current.append(line)
        text = " ".join(current).strip()
        opens_body = " BEGIN " in f" {text} " and not text.upper().endswith("END;")
        if text.endswith(";") and not opens_body:
            statements.append(text)
            current = []
    return statements
