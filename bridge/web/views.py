"""What the technician's API answers (``bridge/web/admin.py``), each as a reply model.

The admin API renders with views of its own, not with a platform's contract: it shows every
platform's payments, and a platform's wire contract changes when that platform asks, not when
a technician does. Each view is a pydantic reply model (``bridge/contracts/fields.py``'s
:class:`~bridge.contracts.fields.Reply`: camelCase on the wire, ``json_body()``), built from
the domain's values by one function here.

The bill. The simulator routes answer the bill they changed, and today that is the same JSON
as the bill LOKE fetches (LOKE's ``TableBills.Bill`` plus ``version``): the technician sees
the table as a payer would. That JSON stays LOKE's, rendered by
``bridge/platforms/loke/contract.py``: were it the house's rendering that LOKE reused, a
change to the technician's view would change LOKE's wire. So the technician has its own
:class:`BillView`, declared field by field (when a field is left out is part of the
declaration, ``exclude_if``) rather than written as a second dict builder. That both are the
same JSON today is held by the tests: the OpenAPI document names LOKE's ``Bill`` for these
answers (``bridge/web/openapi.py``), and ``tests/platforms/test_loke_openapi_responses.py``
validates them against it and against LOKE's own schema. The payment's view is the same
case: the same fields as LOKE's ``PaymentStatus`` today, owned here.

Times are RFC 3339 in UTC (``bridge/contracts/times.py``), but an audit row's ``at``, which
is ``isoformat()``, as it always was.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import Field

from bridge.contracts.fields import Reply
from bridge.contracts.times import rfc3339
from bridge.core.bill import Bill, ItemKind
from bridge.core.payment import AuditRecord, Payment, PaymentState


def _none(value: Any) -> bool:
    return value is None


def _empty(value: Any) -> bool:
    return not value


def _not_positive(value: int) -> bool:
    return value <= 0


class PaymentView(Reply):
    """A payment where it is now, whichever platform took it."""

    payment_id: str
    bill_ref: str
    currency: str
    amount: int
    tip: int
    state: PaymentState
    pos_reference: str | None
    table: int
    created: str
    updated: str


class AuditRow(Reply):
    """One step of a payment's audit trail."""

    from_: PaymentState | None = Field(serialization_alias="from")
    to: PaymentState
    at: str
    reason: str


class PaymentAudit(Reply):
    """``GET /api/payments/{platform}/{paymentId}``."""

    payment: PaymentView
    audit: list[AuditRow]


class PaymentList(Reply):
    """``GET /api/payments?state=…``."""

    state: PaymentState
    payments: list[PaymentView]


class PosView(Reply):
    online: bool
    since: str
    detail: str


class QueueView(Reply):
    depth: int
    applying: int
    oldest_queued_age_seconds: float | None


class LocationView(Reply):
    loke_location_id: str
    name: str
    driver: str
    pos_location: str
    platform: str = "loke"
    #: ``file``: from the config file; ``linked``: on the technician's page.
    source: str = "file"


class ConnectionView(Reply):
    """One account at a platform (LOKE: an organisation): ``ok``, or ``reauthorise`` when
    the platform refused its tokens and the technician must connect again."""

    platform: str
    account: str
    state: str
    reason: str | None = None


class StatusView(Reply):
    """``GET /api/status``: the bridge, each POS, the outbox, the linked locations."""

    version: str
    started_at: str
    now: str
    pos_online: bool
    pos: dict[str, PosView]
    queue: QueueView
    needs_attention: int
    locations: list[LocationView]
    connections: list[ConnectionView] = Field(default_factory=list)


class ModeView(Reply):
    """``POST /api/drivers/{driver}/simulator``: the mode as it is after the change."""

    driver: str
    mode: str
    latency_ms: int


class BillSubItemView(Reply):
    name: str
    amount: int


class BillLineView(Reply):
    id: str
    name: str
    amount: int
    quantity: int
    type: ItemKind
    tax: int | None = Field(None, exclude_if=_none)
    sub_items: list[BillSubItemView] = Field(default_factory=list, exclude_if=_empty)


class BillPaymentView(Reply):
    """A payment on the bill: ``payment`` and ``total`` are what it paid, tip included."""

    name: str
    total: int
    ref_id: str = Field("", exclude_if=_empty)
    tip: int = Field(0, exclude_if=_not_positive)
    payment: int = Field(0, exclude_if=_not_positive)


class BillView(Reply):
    """A bill as the simulator routes answer it (see the module's docstring)."""

    id: str
    table: str
    currency: str
    tips_allowed: bool
    items: list[BillLineView]
    total: int
    tax: int | None
    balance: int
    payments: list[BillPaymentView]
    created: str
    updated: str
    version: str
    completed: str | None = Field(None, exclude_if=_none)


def payment_view(payment: Payment) -> PaymentView:
    return PaymentView(
        payment_id=payment.id,
        bill_ref=payment.bill_ref,
        currency=payment.amount.currency,
        amount=payment.amount.minor,
        tip=payment.tip.minor,
        state=payment.state,
        pos_reference=payment.pos_reference,
        table=payment.table,
        created=rfc3339(payment.created_at),
        updated=rfc3339(payment.updated_at),
    )


def audit_view(payment: Payment, trail: Iterable[AuditRecord]) -> PaymentAudit:
    rows = [
        AuditRow(from_=a.from_state, to=a.to_state, at=a.at.isoformat(), reason=a.reason)
        for a in trail
    ]
    return PaymentAudit(payment=payment_view(payment), audit=rows)


def bill_view(bill: Bill) -> BillView:
    return BillView(
        id=bill.id,
        table=str(bill.table),
        currency=bill.currency,
        tips_allowed=bill.tips_allowed,
        items=[
            BillLineView(
                id=i.id,
                name=i.name,
                amount=i.amount,
                quantity=i.quantity,
                type=i.kind,
                tax=i.tax,
                sub_items=[BillSubItemView(name=s.name, amount=s.amount) for s in i.sub_items],
            )
            for i in bill.items
        ],
        total=bill.total.minor,
        tax=bill.tax,
        balance=bill.balance.minor,
        payments=[
            BillPaymentView(
                name=p.name or "Payment",
                total=p.total,
                ref_id=p.ref,
                tip=p.tip,
                payment=p.total,
            )
            for p in bill.payments
        ],
        created=rfc3339(bill.created),
        updated=rfc3339(bill.updated),
        version=bill.version,
        completed=rfc3339(bill.closed_at) if bill.closed_at is not None else None,
    )
