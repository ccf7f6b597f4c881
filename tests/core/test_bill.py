from dataclasses import replace

import orjson
import pytest

from bridge.core.bill import (
    Bill,
    BillItem,
    BillPayment,
    bill_from_dict,
    bill_json_text,
    bill_to_dict,
    charges_part,
)
from bridge.core.money import Money
from tests.core.factories import a_bill, later, paid


def test_total_counts_options_per_unit_and_discounts():
    bill = a_bill()
    assert bill.total == Money(2 * (450 + 60) + 2600 - 500, "AUD")
    assert bill.tax == 2 * 40 + 236 - 45


def test_balance_is_total_minus_payments_and_ignores_tips():
    bill = paid(a_bill(), 1000, tip=200)
    assert bill.balance == Money(3120 - 1000, "AUD")
    assert bill.paid == Money(1000, "AUD")
    assert bill.payments[-1].total == 1200


def test_bill_closes_exactly_when_balance_reaches_zero():
    bill = paid(a_bill(), 3000)
    assert bill.is_open
    closed = paid(bill, 120)
    assert not closed.is_open and closed.balance.minor == 0


def test_payment_above_balance_is_refused_by_the_arithmetic():
    with pytest.raises(ValueError):
        paid(a_bill(), 3121)


def test_version_changes_with_any_change_but_charges_part_only_with_items():
    bill = a_bill()
    after_payment = paid(bill, 100)
    assert after_payment.version != bill.version
    assert charges_part(after_payment.version) == charges_part(bill.version)
    with_item = replace(bill, items=(*bill.items, BillItem("Chips", 1, 900)))
    assert charges_part(with_item.version) != charges_part(bill.version)


def test_version_is_stable_for_equal_bills():
    assert a_bill().version == a_bill().version
    assert charges_part("abc") == "abc"


def test_bill_has_no_tax_when_no_item_says():
    bill = a_bill(items=(BillItem("Chips", 1, 900),))
    assert bill.tax is None


def test_bill_round_trips_through_its_storage_dict():
    bill = paid(paid(a_bill(), 100, tip=5), 3020)
    again = bill_from_dict(bill_to_dict(bill))
    assert again == bill
    assert again.version == bill.version


def test_stored_text_carried_through_payments_is_the_whole_encoding() -> None:
    """bill_json_text reuses the items' and payments' text from the bill a payment was made
    on; it must still be exactly what encoding bill_to_dict whole gives, at every step (the
    first bill, bills whose parent was never encoded, unicode, a closing payment)."""
    bill = a_bill(items=(*a_bill().items, BillItem('Crème brûlée 日本 "q"', 1, 880, "CB")))
    assert bill_json_text(bill) == whole(bill)
    for i in range(12):
        skipped = i % 4 == 3  # this bill's text is never made: its child starts afresh
        payment = BillPayment(f"Zoë {i} \\ \u2028", 100 + i, i % 3 * 10, f"ref-{i}")
        bill = bill.with_payment(payment, later(i + 1))
        if not skipped:
            assert bill_json_text(bill) == whole(bill)
    closing = bill.with_payment(BillPayment("Cash", bill.balance.minor, 0, "end"), later(99))
    assert closing.closed_at is not None
    assert bill_json_text(closing) == whole(closing)
    assert bill_from_dict(orjson.loads(bill_json_text(closing))) == closing


def whole(bill: Bill) -> str:
    return orjson.dumps(bill_to_dict(bill)).decode()
