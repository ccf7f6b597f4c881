"""What a platform can ask of the venue's POS, in the POS's terms and no platform's.

Why a facade: each platform (LOKE's pay-at-table today; Dojo and LOKE's POS API later) has
its own URLs and JSON, but they all ask the same few things of the POS. A platform's adapter
(``bridge/platforms/<name>/``) parses its wire contract into these typed values, calls one
operation, and renders the typed answer back; the services never see a platform's JSON, an
HTTP request or a platform's config.

More operations belong here as platforms need them (creating an order, charging a customer's
stored card), named the same way: what the POS does, with core values in and out.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.core.bill import Bill
from bridge.core.payment import Payment
from bridge.core.rules import PaymentClaim
from bridge.services.locations import LocationRef
from bridge.services.payment_answers import PaymentOutcome, PaymentRequest
from bridge.services.payments import PaymentService
from bridge.store.payments import PaymentStore
from common.errors import NotFoundError
from drivers.base import Table


@dataclass(frozen=True, slots=True)
class NewPayment:
    """A platform's payment as parsed from its request, not yet checked against the bill.

    ``fingerprint`` identifies the request's content (``bridge/core/idempotency.py``): a
    payment id sent again with another fingerprint is refused as reused.
    """

    payment_id: str
    claim: PaymentClaim
    label: str
    fingerprint: str


class PosOperations:
    """The POS operations of every linked location, for any platform."""

    def __init__(self, payments: PaymentService, store: PaymentStore) -> None:
        self._payments = payments
        self._store = store

    async def list_tables(self, location: LocationRef) -> list[Table]:
        """The location's tables.

        Raises:
            ServiceUnavailableError: ``pos_offline``.
        """
        return await self._payments.tables(location)

    async def open_bill(self, location: LocationRef, table: int) -> Bill:
        """The table's open bill, straight from the POS.

        Raises:
            NotFoundError: ``unknown_table`` or ``no_open_bill``.
            ServiceUnavailableError: ``pos_offline``.
        """
        return await self._payments.open_bill(location, table)

    async def take_payment(
        self, location: LocationRef, table: int, payment: NewPayment
    ) -> PaymentOutcome:
        """Check, record and apply (or queue) a payment toward the table's bill.

        Raises:
            ApiError: a refusal that was not recorded (``bridge/services/payments.py``).
        """
        return await self._payments.take_payment(
            PaymentRequest(
                platform=location.platform,
                location=location,
                table=table,
                payment_id=payment.payment_id,
                claim=payment.claim,
                label=payment.label,
                fingerprint=payment.fingerprint,
            )
        )

    async def payment_status(self, location: LocationRef, payment_id: str) -> Payment:
        """The payment with this id, taken at this location from its platform.

        Raises:
            NotFoundError: ``unknown_payment`` (none, or one of another location).
        """
        payment = await self._store.get_payment(location.platform, payment_id)
        if payment is None or payment.location_id != location.location_id:
            raise NotFoundError(
                "unknown_payment",
                "no payment with this id at this location",
                {"paymentId": payment_id[:128]},
            )
        return payment
