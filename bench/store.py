"""Instructions per payment of the SQLite layer alone: the store calls of one online payment.

    .venv/bin/python -m bench.store                     # ~45 s
    .venv/bin/python -m bench.store --small 300 --large 1300 --concurrency 64

Why: ``bench.instructions`` counts the whole bridge (HTTP, JSON, the simulated POS), where the
store is about a third and run-to-run noise is ~2 %; a store change of a few per cent hides
there. This runs, in one process and on a real file (WAL, ``synchronous=FULL``, group commit),
exactly the store calls :class:`bridge.services.payments.PaymentService` makes for a payment
the POS applies at once: the idempotency read, ``pending_on_bill``, ``record_payment``
(applying, two audit rows) and ``save_transition`` (applied, its answer, the bill snapshot),
``--concurrency`` payments at a time over 999 tables (each table's bill is one object, whose
JSON text is made once: the snapshot's encoding is not counted). The payments move in step
(each batch holds all of them), so both reads find the writer's connection idle: the dearer
read-only connection, which serves reads that arrive during a commit, is not counted. It runs
twice under ``valgrind --tool=callgrind`` (``--small`` and ``--large`` payments) and divides
the difference of the totals by the difference of the counts, so start-up cancels out. Then
one run without valgrind prints the event-loop thread's CPU per payment (noisy on a shared
machine; syscalls included, which callgrind does not count).

``--run N`` is the worker mode: it only runs N payments and prints its figures. Standard
library and the bridge only; the data folder is a temporary directory, removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO))

from bench.common import child_env  # noqa: E402  (after the sys.path fix for script runs)
from bench.instructions import callgrind_total, under_callgrind  # noqa: E402
from bridge.core.bill import Bill, BillItem, BillPayment  # noqa: E402
from bridge.core.idempotency import StoredResponse  # noqa: E402
from bridge.core.lifecycle import decide  # noqa: E402
from bridge.core.money import Money  # noqa: E402
from bridge.core.payment import receive  # noqa: E402
from bridge.core.payment_events import CheckedOk, DriverApplied  # noqa: E402
from bridge.store.database import Database  # noqa: E402
from bridge.store.payments import PaymentStore  # noqa: E402

TABLES = 999


def a_bill(table: int, now: datetime) -> Bill:
    """A bill as the simulator returns it after one payment: two items, one payment."""
    items = (BillItem("Flat White", 2, 450, "FW", tax=40), BillItem("Pizza", 1, 2600, "MP"))
    bill = Bill(f"B-{table}", table, "AUD", items, now, now)
    return bill.with_payment(BillPayment("App", 1000, 0, f"r{table}"), now)


async def one_payment(store: PaymentStore, index: int, bill: Bill) -> None:
    payment_id = uuid.uuid4().hex  # platforms' ids are random: random index leaves
    assert store.idempotency("loke", payment_id) is None
    store.pending_on_bill("loc", bill.id)
    now = datetime.now(UTC)
    payment, received = receive(
        payment_id=payment_id,
        platform="loke",
        location_id="loc",
        table=bill.table,
        bill_ref=bill.id,
        bill_version="v1",
        amount=Money(1000, "AUD"),
        tip=Money(0, "AUD"),
        label="App",
        now=now,
    )
    applying_decision = decide(payment, CheckedOk(pos_online=True), now)
    applying, (audit,) = applying_decision.payment, applying_decision.audits
    hit = await store.record_payment(
        applying, [received, audit], "f" * 64, response=None, outbox_at=None, claimed=False, now=now
    )
    assert hit is None
    done = datetime.now(UTC)
    applied_decision = decide(applying, DriverApplied("P-1", bill, 0), done)
    applied, (audit,) = applied_decision.payment, applied_decision.audits
    body = {
        "status": "applied",
        "paymentId": payment_id,
        "billRef": bill.id,
        "currency": "AUD",
        "amount": 1000,
        "tip": 0,
        "posReference": "P-1",
        "balance": 2500,
        "billClosed": False,
        "billVersion": "0123456789abcdef",
    }
    await store.save_transition(applied, audit, response=StoredResponse(201, body), bill=bill)


async def run(payments: int, concurrency: int, folder: Path) -> None:
    db = Database(folder / "bridge.sqlite3")
    await db.open()
    store = PaymentStore(db)
    now = datetime.now(UTC)
    bills = [a_bill(table, now) for table in range(1, TABLES + 1)]
    todo = iter(range(payments))

    async def worker() -> None:
        for index in todo:
            await one_payment(store, index, bills[index % TABLES])

    began = time.thread_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    loop_cpu_s = time.thread_time() - began
    await db.close()
    per = loop_cpu_s / payments * 1e6 if payments else 0.0
    print(f"{payments} payments, {db.batches} commits: event-loop CPU {per:.1f} us per payment")


def counted(payments: int, concurrency: int) -> int:
    """Instructions of a whole ``--run`` process under callgrind."""
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        folder = Path(tmp)
        argv = [sys.executable, "-m", "bench.store", "--run", str(payments)]
        argv += ["--concurrency", str(concurrency), "--folder", str(folder)]
        subprocess.run(
            under_callgrind(argv, folder / "callgrind.out", from_start=True),
            check=True,
            capture_output=True,
            timeout=600,
            cwd=REPO,
            env=child_env(),
        )
        return callgrind_total(folder.glob("callgrind.out*"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.store", description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=300)
    parser.add_argument("--large", type=int, default=1300)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--run", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run is not None:
        with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
            asyncio.run(run(args.run, args.concurrency, args.folder or Path(tmp)))
        return 0
    if not 0 < args.small < args.large <= 20_000 or not 1 <= args.concurrency <= 256:
        parser.error("0 < --small < --large <= 20000, --concurrency in [1, 256]")
    if shutil.which("valgrind") is None:
        parser.error("valgrind not found (Debian: apt-get install valgrind)")
    small = counted(args.small, args.concurrency)
    large = counted(args.large, args.concurrency)
    per = (large - small) / (args.large - args.small)
    print(f"store layer: {per:,.0f} instructions per payment (callgrind, user space)")
    return main(["--run", str(args.large * 5), "--concurrency", str(args.concurrency)])


if __name__ == "__main__":
    sys.exit(main())
