"""What a payment request is, and the answers given for it without the POS: refusals by a
rule or by the POS, replays of a payment id, and "still in progress".

Why its own module: these are the payment service's vocabulary (the platforms' backends
build :class:`PaymentRequest`; the outbox and the service share the wording of refusals),
while ``payments.py`` is the order of steps that makes a payment durable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bridge.config import LocationConfig
from bridge.core.bill import Bill
from bridge.core.idempotency import StoredResponse
from bridge.core.payment import Payment
from bridge.core.rules import PaymentClaim, PaymentRuleError
from bridge.errors import RULE_STATUS, ApiError, ConflictError, UnprocessableError
from bridge.store.rows import IdempotencyHit
from drivers.errors import PaymentRefusedError


class PaymentRenderer(Protocol):
    """How a platform words a payment's success; errors use the bridge's one error shape."""

    def applied(self, payment: Payment, bill: Bill | None) -> StoredResponse: ...

    def queued(self, payment: Payment) -> StoredResponse: ...


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """A parsed, well-formed payment, not yet checked against the bill."""

    platform: str
    location: LocationConfig
    table: int
    payment_id: str
    claim: PaymentClaim
    label: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    response: StoredResponse
    replayed: bool = False


def rejection(error: PaymentRuleError | PaymentRefusedError) -> StoredResponse:
    """The stored answer for a payment refused by a rule or by the POS."""
    if isinstance(error, PaymentRefusedError):
        code, message, details = error.reason, str(error), {}
    else:
        code, message, details = error.code, str(error), error.details
    api_error = RULE_STATUS.get(code, ConflictError)(code, message, details)
    return StoredResponse(api_error.status, api_error.body())


def in_progress(payment_id: str) -> ApiError:
    return ConflictError(
        "in_progress",
        "this payment is still being processed; retry shortly",
        {"paymentId": payment_id},
        {"Retry-After": "1"},
    )


def replay(hit: IdempotencyHit, request: PaymentRequest) -> PaymentOutcome:
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
    if hit.response is None:
        raise in_progress(request.payment_id)
    return PaymentOutcome(hit.response, replayed=True)
