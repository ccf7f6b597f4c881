"""The simulated POS's SQLite schema, its one hot statement, and option helpers.

Kept apart from ``driver.py`` so the driver stays one readable module.
"""

from __future__ import annotations

INSERT_PAYMENT = (
    "INSERT INTO sim_payments (seq, location, payment_id, bill_id, amount, tip, currency,"
    " applied_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS sim_tables (
    location TEXT NOT NULL, table_no INTEGER NOT NULL, name TEXT NOT NULL,
    PRIMARY KEY (location, table_no));
CREATE TABLE IF NOT EXISTS sim_bills (
    id TEXT PRIMARY KEY, location TEXT NOT NULL, table_no INTEGER NOT NULL,
    open INTEGER NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS sim_bills_open ON sim_bills (location, table_no, open);
CREATE TABLE IF NOT EXISTS sim_payments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, location TEXT NOT NULL, payment_id TEXT NOT NULL,
    bill_id TEXT NOT NULL, amount INTEGER NOT NULL, tip INTEGER NOT NULL,
    currency TEXT NOT NULL, applied_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS sim_payments_id ON sim_payments (location, payment_id);
CREATE TABLE IF NOT EXISTS sim_serials (location TEXT PRIMARY KEY, next_serial INTEGER NOT NULL);
"""


def pos_reference(seq: int) -> str:
    """The POS's reference for its ``seq``-th payment."""
    return f"SIM-{seq:06d}"
