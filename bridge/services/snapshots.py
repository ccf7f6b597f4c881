"""Each table's latest bill, kept to check payments against while the POS is away.

Why a payment does not always write its table's snapshot: the snapshot row is the largest
page a payment dirties at random (one bill per page: 2.2 KiB of JSON on average in the
payment bench), about 40 % of the bytes each payment adds to the WAL, and each of them is
fsynced before the payment's answer. A table paid several times in a few seconds (a split
bill) needs the file's copy only once: the newer bills are kept here, in memory, and written
together every :data:`FLUSH_INTERVAL_S` (and when the bridge stops).

Why the offline check stays exact, even after a crash loses what was in memory: the check
starts from the newest bill known (here or in the file) and takes off every payment on that
bill which is not on it yet: the pending ones, as before, and the *applied* ones created since
the snapshot was taken (``PaymentStore.applied_since``). A table's payments are taken one at
a time (its lock), and an online payment is applied within two POS deadlines of its creation,
so every payment applied after a snapshot was taken was created no earlier than the snapshot
minus :func:`slack`. A payment the outbox applies late may be older than that: the outbox
always writes the snapshot with it, so the file is then the newest copy.

A snapshot is always written at once when it is the first of its table since the bridge
started, when the bill is another bill than the last one written (a new bill on the table),
when the bill is closed, or when the table's last write is :data:`FLUSH_INTERVAL_S` old.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bridge.core.bill import Bill

#: Longest a table's newest bill waits in memory for the file, seconds.
FLUSH_INTERVAL_S = 5.0


def slack(pos_timeout_s: float) -> timedelta:
    """How much earlier than a snapshot a payment applied after it may have been created:
    two POS calls (the bill, the apply) and a minute for the commits in between."""
    return timedelta(seconds=2 * pos_timeout_s + 60)


@dataclass(frozen=True, slots=True)
class KnownBill:
    """A table's bill and when the bridge saw it."""

    location_id: str
    bill: Bill
    seen_at: datetime


class BillSnapshots:
    """Which table's bill to write now, which to keep for the next flush; see the module
    docstring. Pure bookkeeping: the caller writes, with the time it is given."""

    def __init__(self, interval_s: float = FLUSH_INTERVAL_S) -> None:
        self._interval = timedelta(seconds=interval_s)
        #: Per table: the bill id and time of the last snapshot written (or being written).
        self._written: dict[tuple[str, int], tuple[str, datetime]] = {}
        #: Per table: a bill newer than the file's copy, waiting for :meth:`take_unwritten`.
        self._unwritten: dict[tuple[str, int], KnownBill] = {}
        #: Per table: the version of the newest bill known (written or waiting).
        self._versions: dict[tuple[str, int], str] = {}

    def is_known(self, location_id: str, bill: Bill) -> bool:
        """Whether this very bill (same version) is already written or waiting: a bill
        fetched again unchanged needs no write."""
        return self._versions.get((location_id, bill.table)) == bill.version

    def write_now(self, location_id: str, bill: Bill, now: datetime) -> bool:
        """Whether ``bill``, just received from the POS, goes to the file with the change
        being written; if not, it is kept here for the next flush."""
        key = (location_id, bill.table)
        self._versions[key] = bill.version
        last = self._written.get(key)
        if (
            last is None
            or last[0] != bill.id
            or not bill.is_open
            or now - last[1] >= self._interval
            or now < last[1]  # the clock went back: do not trust the interval
        ):
            self._written[key] = (bill.id, now)
            self._unwritten.pop(key, None)
            return True
        self._unwritten[key] = KnownBill(location_id, bill, now)
        return False

    def written(self, location_id: str, bill: Bill, now: datetime) -> None:
        """A snapshot of ``bill`` was written outside :meth:`write_now` (a bill fetch)."""
        key = (location_id, bill.table)
        self._versions[key] = bill.version
        self._written[key] = (bill.id, now)
        self._unwritten.pop(key, None)

    def newest(self, location_id: str, table: int) -> KnownBill | None:
        """The table's bill newer than the file's copy, if one waits here."""
        return self._unwritten.get((location_id, table))

    def take_unwritten(self) -> list[KnownBill]:
        """Every bill waiting for the file; they are no longer kept here."""
        taken = list(self._unwritten.values())
        self._unwritten.clear()
        return taken
