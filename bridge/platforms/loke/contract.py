"""The JSON of LOKE's pay-at-table URLs, both ways. Pure.

Bills are rendered in LOKE's ``TableBills.Bill`` schema (``contracts/loke/bill.schema.json``)
plus one field of ours, ``version``, which a payment quotes back. Payment bodies are read
strictly: a field we do not know is refused, not dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from bridge.core.bill import Bill, BillItem
from bridge.core.idempotency import StoredResponse, request_fingerprint
from bridge.core.money import CURRENCIES, Money
from bridge.core.payment import Payment
from bridge.core.rules import PaymentClaim
from bridge.http.fields import Fields

DEFAULT_LABEL = "LOKE Pay at Table"


@lru_cache(maxsize=4096)
def rfc3339(moment: datetime) -> str:
    """``moment`` in UTC, to the second. Cached: a bill's times are the same on every fetch,
    and ``astimezone`` with ``strftime`` were 3–5 % of a bill fetch's CPU (py-spy). Equal
    datetimes are the same instant, so they format alike whatever their zone."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _item_json(item: BillItem) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": item.id,
        "name": item.name,
        "amount": item.amount,
        "quantity": item.quantity,
        "type": item.kind.value,
    }
    if item.tax is not None:
        data["tax"] = item.tax
    if item.sub_items:
        data["subItems"] = [{"name": s.name, "amount": s.amount} for s in item.sub_items]
    return data


def bill_json(bill: Bill) -> dict[str, Any]:
    """``bill`` as LOKE's ``TableBills.Bill``, plus ``version``."""
    payments = []
    for p in bill.payments:
        entry: dict[str, Any] = {"name": p.name or "Payment", "total": p.total}
        if p.ref:
            entry["refId"] = p.ref
        if p.tip > 0:
            entry["tip"] = p.tip
        if p.total > 0:
            entry["payment"] = p.total
        payments.append(entry)
    data: dict[str, Any] = {
        "id": bill.id,
        "table": str(bill.table),
        "currency": bill.currency,
        "tipsAllowed": bill.tips_allowed,
        "items": [_item_json(i) for i in bill.items],
        "total": bill.total.minor,
        "tax": bill.tax,
        "balance": bill.balance.minor,
        "payments": payments,
        "created": rfc3339(bill.created),
        "updated": rfc3339(bill.updated),
        "version": bill.version,
    }
    if bill.closed_at is not None:
        data["completed"] = rfc3339(bill.closed_at)
    return data


@dataclass(frozen=True, slots=True)
class PaymentBody:
    payment_id: str
    claim: PaymentClaim
    label: str
    fingerprint: str


def parse_payment(body: Any, location_id: str, table: int) -> PaymentBody:
    """Read an "add payment to table bill" body.

    Raises:
        BadRequestError: a field is missing, of the wrong type, out of range, or unknown.
    """
    fields = Fields(body)
    payment_id = fields.string("paymentId", max_len=128, printable_ascii=True)
    bill_ref = fields.string("billRef", max_len=128)
    bill_version = fields.string("billVersion", max_len=64, printable_ascii=True)
    currency = fields.choice("currency", CURRENCIES)
    amount = fields.minor_units("amount")
    tip = fields.minor_units("tip", required=False, minimum=0) or 0
    label = fields.string("name", required=False, max_len=100)
    customer = fields.object("customer")
    customer_data: dict[str, str] = {}
    if customer is not None:
        for key in ("id", "firstName", "lastName", "email", "phoneNumber"):
            value = customer.string(key, required=False, max_len=256)
            if value is not None:
                customer_data[key] = value
        customer.done()
    fields.done()
    assert payment_id and bill_ref and bill_version and currency and amount  # required above
    if label is None:
        names = " ".join(
            filter(None, (customer_data.get("firstName"), customer_data.get("lastName")))
        )
        label = f"{DEFAULT_LABEL} - {names}" if names else DEFAULT_LABEL
    fingerprint = request_fingerprint({"location": location_id, "table": table, "body": body})
    return PaymentBody(
        payment_id=payment_id,
        claim=PaymentClaim(bill_ref, bill_version, Money(amount, currency), Money(tip, currency)),
        label=label,
        fingerprint=fingerprint,
    )


def _payment_fields(payment: Payment) -> dict[str, Any]:
    return {
        "paymentId": payment.id,
        "billRef": payment.bill_ref,
        "currency": payment.amount.currency,
        "amount": payment.amount.minor,
        "tip": payment.tip.minor,
    }


class LokeRenderer:
    """How LOKE's URLs word a payment's success (the service stores these for replays)."""

    def applied(self, payment: Payment, bill: Bill | None) -> StoredResponse:
        body: dict[str, Any] = {
            "status": "applied",
            **_payment_fields(payment),
            "posReference": payment.pos_reference,
        }
        if bill is not None:
            body["balance"] = bill.balance.minor
            body["billClosed"] = not bill.is_open
            body["billVersion"] = bill.version
        return StoredResponse(201, body)

    def queued(self, payment: Payment) -> StoredResponse:
        return StoredResponse(
            202,
            {
                "status": "queued",
                **_payment_fields(payment),
                "message": "recorded at the venue; it will be applied to the POS when it is "
                "reachable",
            },
        )


def payment_status_json(payment: Payment) -> dict[str, Any]:
    return {
        **_payment_fields(payment),
        "state": payment.state.value,
        "posReference": payment.pos_reference,
        "table": payment.table,
        "created": rfc3339(payment.created_at),
        "updated": rfc3339(payment.updated_at),
    }
