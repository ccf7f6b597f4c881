"""What a payment request is, and the answers given for it without the POS: replays of a
payment id, and "still in progress".

Why its own module: these are the payment service's vocabulary (``operations.py`` builds
:class:`PaymentRequest`; each platform brings a :class:`PaymentRenderer`), while
``payments.py`` is the order of steps that makes a payment durable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bridge.core.bill import Bill
from bridge.core.idempotency import StoredResponse
from bridge.core.lifecycle import decide
from bridge.core.payment import Payment
from bridge.core.payment_events import AnswerInProgress, Replayed
from bridge.core.rules import PaymentClaim
from bridge.services.locations import LocationRef
from bridge.store.rows import IdempotencyHit
from common.errors import ApiError, ConflictError, UnprocessableError


class PaymentRenderer(Protocol):
    """How a platform words a payment's success; errors use the bridge's one error shape."""

    def applied(self, payment: Payment, bill: Bill | None) -> StoredResponse: ...

    def queued(self, payment: Payment) -> StoredResponse: ...


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """A parsed, well-formed payment, not yet checked against the bill."""

    platform: str
    location: LocationRef
    table: int
    payment_id: str
    claim: PaymentClaim
    label: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    """What a payment request got: the answer stored for it (in its platform's words, so a
    replay gets the same), and whether this was a replay of an earlier request."""

    response: StoredResponse
    replayed: bool = False


def in_progress(payment_id: str) -> ApiError:
    return ConflictError(
        "in_progress",
        "this payment is still being processed; retry shortly",
        {"paymentId": payment_id},
        {"Retry-After": "1"},
    )


def replay(hit: IdempotencyHit, request: PaymentRequest, payment: Payment) -> PaymentOutcome:
    """The answer for a payment id taken before (``payment``: this request's, received).

    Raises:
        UnprocessableError: the id's record expired, or it was used for another payment.
        ConflictError: ``in_progress``, the first request has no answer yet.
    """
    if hit.expired:
        raise UnprocessableError(
            "idempotency_key_expired",
            "this payment id was used long ago and its stored answer has expired",
            {"paymentId": request.payment_id},
        )
    if hit.request_hash != request.fingerprint:
        raise UnprocessableError(
            "idempotency_key_reused",
            "this payment id was already used for a different payment",
            {"paymentId": request.payment_id},
        )
    decision = decide(payment, Replayed(answered=hit.response is not None), payment.updated_at)
    if hit.response is None or isinstance(decision.effects[0], AnswerInProgress):
        raise in_progress(request.payment_id)
    return PaymentOutcome(hit.response, replayed=True)
