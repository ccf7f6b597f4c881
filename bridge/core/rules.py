"""The rules a payment must meet against the bill it names.

Each broken rule is its own exception with a stable ``code``; the HTTP edge gives each code
its status (``bridge/http/errors.py``). Pure: the caller fetches the bill and counts what
is still pending on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from bridge.core.bill import Bill, charges_part
from bridge.core.money import Money


class PaymentRuleError(Exception):
    """A payment that must not be applied to the bill it names."""

    code: ClassVar[str] = "payment_rule"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


class BillClosedError(PaymentRuleError):
    code = "bill_closed"


class BillChangedError(PaymentRuleError):
    code = "bill_changed"


class AmountExceedsBalanceError(PaymentRuleError):
    code = "amount_exceeds_balance"


class CurrencyMismatchRuleError(PaymentRuleError):
    code = "currency_mismatch"


class TipsNotAllowedError(PaymentRuleError):
    code = "tips_not_allowed"


@dataclass(frozen=True, slots=True)
class PaymentClaim:
    """What a payer says they are paying: which bill, as of which version, how much."""

    bill_ref: str
    bill_version: str
    amount: Money
    tip: Money


def check_payment(bill: Bill | None, claim: PaymentClaim, pending: Money | None = None) -> None:
    """Raise the first rule ``claim`` breaks against ``bill``, the table's open bill now.

    Args:
        bill: the table's open bill, or ``None`` when the table has none (it was closed).
        claim: the payment.
        pending: payments accepted on this bill but not yet on the POS; they will land
            first, so they are taken off the balance.

    Raises:
        BillClosedError, BillChangedError, CurrencyMismatchRuleError, TipsNotAllowedError,
        AmountExceedsBalanceError.
    """
    if bill is None or not bill.is_open:
        raise BillClosedError("the bill is closed", billRef=claim.bill_ref)
    if bill.id != claim.bill_ref:
        raise BillChangedError(
            "the table's open bill is another bill", billRef=claim.bill_ref, currentBillRef=bill.id
        )
    if charges_part(claim.bill_version) != bill.charges_digest:
        raise BillChangedError(
            "the bill's items changed since it was fetched",
            billRef=bill.id,
            billVersion=claim.bill_version,
            currentVersion=bill.version,
        )
    if claim.amount.currency != bill.currency or claim.tip.currency != bill.currency:
        raise CurrencyMismatchRuleError(
            f"the bill is in {bill.currency}", expected=bill.currency, got=claim.amount.currency
        )
    if claim.tip.minor > 0 and not bill.tips_allowed:
        raise TipsNotAllowedError("this bill does not allow tips", tip=claim.tip.minor)
    available = bill.balance - (pending or Money.zero(bill.currency))
    if claim.amount.minor > available.minor:
        raise AmountExceedsBalanceError(
            "the amount is above the bill's balance",
            amount=claim.amount.minor,
            balance=max(available.minor, 0),
        )
