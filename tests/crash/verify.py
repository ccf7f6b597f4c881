"""After the crash test: read both SQLite files and list every broken promise.

The POS's own file is the truth: a payment the bridge answered 2xx must be on it exactly once,
one it refused must not be on it, and every bill must add up. The bridge's file must agree:
every accepted payment applied, with an unbroken audit trail.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from pathlib import Path

from bridge.core.bill import bill_from_dict
from tests.crash.plan import Answer, PlannedBill, PlannedPayment


def _accepted(answer: Answer) -> bool:
    return 200 <= answer.status < 300


def _connect(path: Path) -> sqlite3.Connection:
    assert path.exists(), f"{path} is missing"
    return sqlite3.connect(path)


def check_pos(
    sim_path: Path,
    pos_location: str,
    plan: list[PlannedBill],
    answers: dict[str, Answer],
) -> tuple[list[str], dict[str, int]]:
    """Problems on the simulated POS, and each payment's POS sequence number."""
    problems: list[str] = []
    payments: dict[str, PlannedPayment] = {p.id: p for b in plan for p in b.payments}
    bill_ids = {b.table: b.bill["id"] for b in plan}
    conn = _connect(sim_path)
    try:
        rows = conn.execute(
            "SELECT seq, payment_id, bill_id, amount, tip FROM sim_payments WHERE location = ?"
            " ORDER BY seq",
            (pos_location,),
        ).fetchall()
        bills = conn.execute(
            "SELECT id, table_no, open, data FROM sim_bills WHERE location = ?", (pos_location,)
        ).fetchall()
    finally:
        conn.close()

    on_pos: dict[str, list[tuple[int, str, int, int]]] = defaultdict(list)
    for seq, payment_id, bill_id, amount, tip in rows:
        on_pos[payment_id].append((seq, bill_id, amount, tip))

    for payment_id in sorted(set(on_pos) - set(answers)):
        problems.append(f"{payment_id}: on the POS but never answered (or unknown)")
    sequence: dict[str, int] = {}
    for payment_id, answer in sorted(answers.items()):
        applied = on_pos.get(payment_id, [])
        planned = payments[payment_id]
        if not _accepted(answer):
            if applied:
                problems.append(
                    f"{payment_id}: answered {answer.status} {answer.body.get('error')} but "
                    f"applied {len(applied)} time(s) on the POS"
                )
            continue
        if len(applied) != 1:
            problems.append(
                f"{payment_id}: answered {answer.status} but applied {len(applied)} time(s)"
            )
            continue
        seq, bill_id, amount, tip = applied[0]
        sequence[payment_id] = seq
        if (bill_id, amount, tip) != (bill_ids[planned.table], planned.amount, planned.tip):
            problems.append(
                f"{payment_id}: on the POS as bill {bill_id} amount {amount} tip {tip}, sent"
                f" bill {bill_ids[planned.table]} amount {planned.amount} tip {planned.tip}"
            )

    accepted_by_table: dict[int, int] = defaultdict(int)
    for payment_id, answer in answers.items():
        if _accepted(answer):
            accepted_by_table[payments[payment_id].table] += payments[payment_id].amount
    paid_by_bill: dict[str, int] = defaultdict(int)
    refs_by_bill: dict[str, list[str]] = defaultdict(list)
    for payment_id, seq_rows in on_pos.items():
        for _seq, bill_id, amount, _tip in seq_rows:
            paid_by_bill[bill_id] += amount
            refs_by_bill[bill_id].append(payment_id)

    tables_seen: dict[int, int] = defaultdict(int)
    planned_totals = {b.table: b.bill["total"] for b in plan}
    for bill_id, table, is_open, data in bills:
        tables_seen[table] += 1
        bill = bill_from_dict(json.loads(data))
        paid = paid_by_bill.get(bill_id, 0)
        total, balance = bill.total.minor, bill.balance.minor
        if total - paid != balance:
            problems.append(
                f"bill {bill_id}: total {total} - POS payments {paid} != balance {balance}"
            )
        if balance < 0:
            problems.append(f"bill {bill_id}: negative balance {balance}")
        if (balance == 0) != (not bill.is_open) or bool(is_open) != bill.is_open:
            problems.append(
                f"bill {bill_id}: balance {balance}, closed_at {bill.closed_at}, open={is_open}"
            )
        if sorted(p.ref for p in bill.payments) != sorted(refs_by_bill.get(bill_id, [])):
            problems.append(f"bill {bill_id}: its payments differ from the POS payment rows")
        if table in planned_totals:
            expected = planned_totals[table] - accepted_by_table.get(table, 0)
            if bill_ids[table] != bill_id:
                problems.append(f"table {table}: bill {bill_id} is not the bill it had")
            elif balance != expected:
                problems.append(
                    f"bill {bill_id}: balance {balance}, but total {planned_totals[table]} minus"
                    f" the payments answered 2xx is {expected}"
                )
    for table in planned_totals:
        if tables_seen.get(table) != 1:
            problems.append(f"table {table}: {tables_seen.get(table, 0)} bills on the POS, not 1")
    return problems, sequence


def check_bridge(
    db_path: Path, platform: str, answers: dict[str, Answer], pos_sequence: dict[str, int]
) -> list[str]:
    """Problems in the bridge's own records: states, replay answers, audit chains."""
    problems: list[str] = []
    conn = _connect(db_path)
    try:
        states = {
            row[0]: (row[1], row[2])
            for row in conn.execute(
                "SELECT id, state, pos_reference FROM payments WHERE platform = ?", (platform,)
            )
        }
        stored = {
            row[0]: row[1]
            for row in conn.execute(
                "SELECT id, answer_status FROM payments WHERE platform = ? AND"
                " request_hash IS NOT NULL",
                (platform,),
            )
        }
        trails: dict[str, list[tuple[str | None, str]]] = defaultdict(list)
        for payment_id, from_state, to_state in conn.execute(
            "SELECT payment_id, from_state, to_state FROM payment_audit WHERE platform = ?"
            " ORDER BY seq",
            (platform,),
        ):
            trails[payment_id].append((from_state, to_state))
        outbox = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    finally:
        conn.close()

    if outbox:
        problems.append(f"bridge: {outbox} outbox entries left")
    for payment_id in sorted(set(states) - set(answers)):
        problems.append(f"{payment_id}: in the bridge's database but never answered (or unknown)")
    for payment_id, answer in sorted(answers.items()):
        state, reference = states.get(payment_id, (None, None))
        if _accepted(answer):
            if state != "applied":
                problems.append(f"{payment_id}: answered {answer.status}, bridge state {state}")
            elif payment_id in pos_sequence and reference != f"SIM-{pos_sequence[payment_id]:06d}":
                problems.append(f"{payment_id}: bridge says POS reference {reference}")
        elif state not in (None, "rejected"):
            problems.append(f"{payment_id}: answered {answer.status}, bridge state {state}")
        if state is not None and stored.get(payment_id) != answer.status:
            problems.append(
                f"{payment_id}: answered {answer.status}, replay record says "
                f"{stored.get(payment_id)}"
            )
        if state is None:
            continue
        trail = trails.get(payment_id, [])
        expected_from: str | None = None
        for step, (from_state, to_state) in enumerate(trail):
            if from_state != expected_from:
                problems.append(f"{payment_id}: audit trail broken at step {step}: {trail}")
                break
            expected_from = to_state
        if not trail or trail[0][1] != "received" or expected_from != state:
            problems.append(f"{payment_id}: audit trail {trail} does not end in {state}")
    return problems
