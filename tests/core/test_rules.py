import pytest

from bridge.core.money import Money
from bridge.core.rules import (
    AmountExceedsBalanceError,
    BillChangedError,
    BillClosedError,
    CurrencyMismatchRuleError,
    PaymentClaim,
    TipsNotAllowedError,
    check_payment,
)
from tests.core.factories import a_bill, paid


def claim(bill, amount, tip=0, currency="AUD", ref=None, version=None):
    return PaymentClaim(
        ref or bill.id, version or bill.version, Money(amount, currency), Money(tip, currency)
    )


def test_a_payment_within_the_balance_passes():
    bill = a_bill()
    check_payment(bill, claim(bill, 3120, tip=300))


def test_no_open_bill_means_closed():
    bill = a_bill()
    with pytest.raises(BillClosedError):
        check_payment(None, claim(bill, 1))
    with pytest.raises(BillClosedError):
        check_payment(paid(bill, 3120), claim(bill, 1))


def test_another_bill_on_the_table_is_a_change():
    bill = a_bill()
    with pytest.raises(BillChangedError) as caught:
        check_payment(a_bill(id="B-0002"), claim(bill, 1))
    assert caught.value.details["currentBillRef"] == "B-0002"


def test_changed_items_are_a_change_but_another_guests_payment_is_not():
    bill = a_bill()
    seen = claim(bill, 1000)
    check_payment(paid(bill, 500), seen)  # split bill: still fine
    changed = a_bill(items=bill.items[:2])
    with pytest.raises(BillChangedError):
        check_payment(changed, seen)


def test_amount_above_balance_minus_pending_is_refused():
    bill = a_bill()
    check_payment(bill, claim(bill, 3120), pending=Money(0, "AUD"))
    with pytest.raises(AmountExceedsBalanceError) as caught:
        check_payment(bill, claim(bill, 3000), pending=Money(200, "AUD"))
    assert caught.value.details == {"amount": 3000, "balance": 2920}


def test_currency_must_match_the_bill():
    bill = a_bill()
    with pytest.raises(CurrencyMismatchRuleError):
        check_payment(bill, claim(bill, 100, currency="NZD"))


def test_tip_on_a_bill_without_tips_is_refused_but_zero_tip_is_fine():
    bill = a_bill(tips_allowed=False)
    check_payment(bill, claim(bill, 100, tip=0))
    with pytest.raises(TipsNotAllowedError):
        check_payment(bill, claim(bill, 100, tip=1))
