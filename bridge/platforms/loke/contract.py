"""The JSON of LOKE's pay-at-table URLs, both ways. Pure.

Bills are rendered in LOKE's ``TableBills.Bill`` schema (``contracts/loke/bill.schema.json``)
plus one field of ours, ``version``, which a payment quotes back. Payment bodies are read
strictly (``bodies.PaymentRequest``): a field we do not know is refused, not dropped; the
answers are ``bodies``' reply models, so they are what the OpenAPI document says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.contracts.times import rfc3339
from bridge.contracts.validation import validate
from bridge.core.bill import Bill, BillItem
from bridge.core.idempotency import StoredResponse, request_fingerprint
from bridge.core.money import Money
from bridge.core.payment import Payment
from bridge.core.rules import PaymentClaim
from bridge.platforms.loke.bodies import (
    PaymentApplied,
    PaymentQueued,
    PaymentRequest,
    PaymentStatus,
)

DEFAULT_LABEL = "LOKE Pay at Table"


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
    """A payment as the services take it, read from LOKE's :class:`PaymentRequest`."""

    payment_id: str
    claim: PaymentClaim
    label: str
    fingerprint: str


def parse_payment(body: Any, location_id: str, table: int) -> PaymentBody:
    """Read an "add payment to table bill" body (decoded JSON).

    Raises:
        BadRequestError: a field is missing, of the wrong type, out of range, or unknown.
    """
    request = validate(PaymentRequest, body)
    label = request.name
    if label is None:
        customer = request.customer
        names = (
            " ".join(filter(None, (customer.first_name, customer.last_name))) if customer else ""
        )
        label = f"{DEFAULT_LABEL} - {names}" if names else DEFAULT_LABEL
    currency = request.currency
    # The fingerprint hashes the body as sent, as it always has: stored fingerprints of
    # payments taken before an upgrade must still match their retries.
    fingerprint = request_fingerprint({"location": location_id, "table": table, "body": body})
    return PaymentBody(
        payment_id=request.payment_id,
        claim=PaymentClaim(
            request.bill_ref,
            request.bill_version,
            Money(request.amount, currency),
            Money(request.tip or 0, currency),
        ),
        label=label,
        fingerprint=fingerprint,
    )


def _payment_fields(payment: Payment) -> dict[str, Any]:
    return {
        "payment_id": payment.id,
        "bill_ref": payment.bill_ref,
        "currency": payment.amount.currency,
        "amount": payment.amount.minor,
        "tip": payment.tip.minor,
    }


class LokeRenderer:
    """How LOKE's URLs word a payment's success (the service stores these for replays)."""

    def applied(self, payment: Payment, bill: Bill | None) -> StoredResponse:
        fields = _payment_fields(payment)
        if bill is not None:
            fields.update(
                balance=bill.balance.minor, bill_closed=not bill.is_open, bill_version=bill.version
            )
        body = PaymentApplied(status="applied", pos_reference=payment.pos_reference, **fields)
        return StoredResponse(201, body.json_body())

    def queued(self, payment: Payment) -> StoredResponse:
        body = PaymentQueued(
            status="queued",
            message="recorded at the venue; it will be applied to the POS when it is reachable",
            **_payment_fields(payment),
        )
        return StoredResponse(202, body.json_body())


def payment_status_json(payment: Payment) -> dict[str, Any]:
    return PaymentStatus(
        **_payment_fields(payment),
        state=payment.state,
        pos_reference=payment.pos_reference,
        table=payment.table,
        created=rfc3339(payment.created_at),
        updated=rfc3339(payment.updated_at),
    ).json_body()
