"""Which bill snapshots are written with their payment and which wait for the next flush."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bridge.core.bill import Bill, BillItem
from bridge.services.snapshots import BillSnapshots

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def a_bill(table: int = 4, bill_id: str = "B-1", closed: bool = False) -> Bill:
    bill = Bill(bill_id, table, "AUD", (BillItem("Pizza", 1, 2600, "MP"),), T0, T0)
    return replace(bill, closed_at=T0) if closed else bill


def seconds(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def test_first_bill_of_a_table_is_written_then_newer_ones_wait_for_the_interval():
    snapshots = BillSnapshots(interval_s=5)
    assert snapshots.write_now("L", a_bill(), seconds(0)) is True
    assert snapshots.newest("L", 4) is None
    assert snapshots.write_now("L", a_bill(), seconds(1)) is False
    assert snapshots.write_now("L", a_bill(), seconds(2)) is False
    kept = snapshots.newest("L", 4)
    assert kept is not None and (kept.location_id, kept.seen_at) == ("L", seconds(2))
    assert snapshots.write_now("L", a_bill(), seconds(5)) is True  # interval since the write
    assert snapshots.newest("L", 4) is None  # what the file now has is newer


def test_tables_and_locations_are_apart():
    snapshots = BillSnapshots(interval_s=5)
    assert snapshots.write_now("L", a_bill(4), seconds(0)) is True
    assert snapshots.write_now("L", a_bill(5), seconds(1)) is True
    assert snapshots.write_now("M", a_bill(4), seconds(1)) is True


def test_a_new_bill_a_closed_bill_or_a_clock_gone_back_is_written_at_once():
    snapshots = BillSnapshots(interval_s=5)
    assert snapshots.write_now("L", a_bill(), seconds(0)) is True
    assert snapshots.write_now("L", a_bill(bill_id="B-2"), seconds(1)) is True
    assert snapshots.write_now("L", a_bill(bill_id="B-2", closed=True), seconds(2)) is True
    assert snapshots.write_now("L", a_bill(bill_id="B-3"), seconds(3)) is True
    assert snapshots.write_now("L", a_bill(bill_id="B-3"), seconds(-60)) is True


def test_a_fetched_bill_written_elsewhere_counts_as_the_last_write():
    snapshots = BillSnapshots(interval_s=5)
    assert snapshots.write_now("L", a_bill(), seconds(0)) is True
    assert snapshots.write_now("L", a_bill(), seconds(1)) is False
    snapshots.written("L", a_bill(), seconds(2))
    assert snapshots.newest("L", 4) is None
    assert snapshots.write_now("L", a_bill(), seconds(6)) is False  # 4 s after the fetch's


def test_take_unwritten_hands_over_each_kept_bill_once():
    snapshots = BillSnapshots(interval_s=5)
    for table in (1, 2, 3):
        snapshots.write_now("L", a_bill(table), seconds(0))
    for table in (1, 2):
        snapshots.write_now("L", a_bill(table), seconds(1))
    taken = snapshots.take_unwritten()
    assert sorted(k.bill.table for k in taken) == [1, 2]
    assert snapshots.take_unwritten() == []
    assert snapshots.newest("L", 1) is None


def test_a_bill_fetched_again_unchanged_is_known_whether_written_or_waiting():
    snapshots = BillSnapshots(interval_s=5)
    bill = a_bill()
    assert snapshots.is_known("L", bill) is False
    snapshots.written("L", bill, seconds(0))
    assert snapshots.is_known("L", bill) is True
    paid = replace(bill, items=(*bill.items, BillItem("Coffee", 1, 450, "FW")))
    assert snapshots.is_known("L", paid) is False
    assert snapshots.write_now("L", paid, seconds(1)) is False  # waiting, yet known
    assert snapshots.is_known("L", paid) is True
