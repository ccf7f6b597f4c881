"""A platform's payment at the venue, and the only steps its state may take.

States::

    received ──► queued ──► applying ──► applied
        │           ▲  │        │ │
        │           └──┼────────┘ └──► needs_attention ──► resolved   (by a person's hand)
        └──► rejected  └──► applied          │     (the POS refused it for good)
                          needs_attention    └──► queued   (a technician retried it)

``received`` is the instant the request is parsed; it is never stored on its own, the first
durable state is one of ``queued``, ``applying`` or ``rejected``. :func:`transition` checks one
step against this graph and returns the new payment with its audit record; *which* step an
event causes is decided by :func:`bridge.core.lifecycle.decide`, the only caller of
:func:`transition` outside its tests. Nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bridge.core.money import Money


class PaymentState(StrEnum):
    RECEIVED = "received"
    QUEUED = "queued"
    APPLYING = "applying"
    APPLIED = "applied"
    REJECTED = "rejected"
    NEEDS_ATTENTION = "needs_attention"
    #: Settled by a technician's hand after the POS refused it (who and why: its audit row).
    RESOLVED = "resolved"


#: States a payment never leaves. ``needs_attention`` leaves only by a technician's hand.
FINAL_STATES = frozenset({PaymentState.APPLIED, PaymentState.REJECTED, PaymentState.RESOLVED})

#: States whose amount is owed to the POS but not yet on it.
PENDING_STATES = frozenset({PaymentState.QUEUED, PaymentState.APPLYING})

_ALLOWED: dict[PaymentState, frozenset[PaymentState]] = {
    PaymentState.RECEIVED: frozenset(
        {PaymentState.QUEUED, PaymentState.APPLYING, PaymentState.REJECTED}
    ),
    PaymentState.QUEUED: frozenset(
        {PaymentState.APPLYING, PaymentState.APPLIED, PaymentState.NEEDS_ATTENTION}
    ),
    PaymentState.APPLYING: frozenset(
        {
            PaymentState.APPLIED,
            PaymentState.QUEUED,
            PaymentState.REJECTED,
            PaymentState.NEEDS_ATTENTION,
        }
    ),
    PaymentState.APPLIED: frozenset(),
    PaymentState.REJECTED: frozenset(),
    PaymentState.NEEDS_ATTENTION: frozenset({PaymentState.QUEUED, PaymentState.RESOLVED}),
    PaymentState.RESOLVED: frozenset(),
}


class InvalidTransitionError(RuntimeError):
    """A state change the machine does not allow: a bug, never a user error."""

    def __init__(self, payment_id: str, current: PaymentState, target: PaymentState) -> None:
        super().__init__(f"payment {payment_id}: {current} -> {target} is not allowed")
        self.payment_id = payment_id
        self.current = current
        self.target = target


@dataclass(frozen=True, slots=True)
class Payment:
    """One platform payment for one bill at one linked location.

    ``amount`` goes toward the bill's balance; ``tip`` is paid on top.
    """

    id: str
    platform: str
    location_id: str
    table: int
    bill_ref: str
    bill_version: str
    amount: Money
    tip: Money
    label: str
    state: PaymentState
    created_at: datetime
    updated_at: datetime
    pos_reference: str | None = None

    @property
    def charged(self) -> Money:
        return self.amount + self.tip


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One row of the append-only audit trail: who moved where, when, and why."""

    payment_id: str
    from_state: PaymentState | None
    to_state: PaymentState
    at: datetime
    reason: str


def receive(
    *,
    payment_id: str,
    platform: str,
    location_id: str,
    table: int,
    bill_ref: str,
    bill_version: str,
    amount: Money,
    tip: Money,
    label: str,
    now: datetime,
) -> tuple[Payment, AuditRecord]:
    """A freshly parsed payment in state ``received``, with its first audit record."""
    payment = Payment(
        id=payment_id,
        platform=platform,
        location_id=location_id,
        table=table,
        bill_ref=bill_ref,
        bill_version=bill_version,
        amount=amount,
        tip=tip,
        label=label,
        state=PaymentState.RECEIVED,
        created_at=now,
        updated_at=now,
    )
    return payment, AuditRecord(payment_id, None, PaymentState.RECEIVED, now, "received")


def transition(
    payment: Payment,
    target: PaymentState,
    now: datetime,
    reason: str,
    *,
    pos_reference: str | None = None,
) -> tuple[Payment, AuditRecord]:
    """Move ``payment`` to ``target``.

    Returns:
        The new payment and the audit record to store with it, in one transaction.

    Raises:
        InvalidTransitionError: the machine does not allow this step.
    """
    if target not in _ALLOWED[payment.state]:
        raise InvalidTransitionError(payment.id, payment.state, target)
    # Spelled out rather than ``dataclasses.replace``, which looks the fields up on every
    # call: three transitions per payment made it a visible share of its CPU (bench/).
    moved = Payment(
        payment.id,
        payment.platform,
        payment.location_id,
        payment.table,
        payment.bill_ref,
        payment.bill_version,
        payment.amount,
        payment.tip,
        payment.label,
        target,
        payment.created_at,
        now,
        pos_reference if pos_reference is not None else payment.pos_reference,
    )
    return moved, AuditRecord(payment.id, payment.state, target, now, reason)
