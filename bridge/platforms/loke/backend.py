"""What LOKE's URLs ask of the bridge once a call is proven and parsed: four operations.

:class:`LokeBackend` maps LOKE's terms (its location ids, its JSON) to the platform-neutral
:class:`~bridge.services.operations.PosOperations` and renders their typed answers in LOKE's
words. An operation returns the rendered :class:`Answer` or raises an
:class:`~common.errors.ApiError`.
"""

from __future__ import annotations

from aiohttp import web

from bridge.platforms.loke.contract import (
    PaymentBody,
    bill_json,
    payment_status_json,
)
from bridge.platforms.loke.locations import LokeLocations
from bridge.services.locations import LocationRef
from bridge.services.operations import NewPayment, PosOperations
from common.answers import Answer, json_answer
from common.errors import UnauthorizedError

_REPLAYED = {"Idempotent-Replayed": "true"}


class LokeBackend:
    """The operations run by this process's services: LOKE's terms mapped to the
    platform-neutral :class:`PosOperations`, and their typed answers rendered as LOKE's
    JSON."""

    def __init__(self, operations: PosOperations, locations: LokeLocations) -> None:
        self._operations = operations
        #: Served now: the file's and the linked (``linking.py``) ones.
        self.locations = locations

    def _ref(self, location: str) -> LocationRef:
        """A served location's ref; the caller was checked against it (``operations.py``)."""
        served = self.locations.get(location)
        if served is None:  # unlinked since the check: as if it had never been linked
            raise unlinked()
        return served.ref

    async def tables(self, location: str) -> Answer:
        ref = self._ref(location)
        tables = await self._operations.list_tables(ref)
        return json_answer(
            {
                "locationId": ref.location_id,
                "tables": [{"number": t.number, "name": t.name} for t in tables],
            }
        )

    async def open_bill(self, location: str, table: int) -> Answer:
        bill = await self._operations.open_bill(self._ref(location), table)
        return json_answer(bill_json(bill), headers={"ETag": f'"{bill.version}"'})

    async def take_payment(self, location: str, table: int, body: PaymentBody) -> Answer:
        payment = NewPayment(body.payment_id, body.claim, body.label, body.fingerprint)
        outcome = await self._operations.take_payment(self._ref(location), table, payment)
        response = outcome.response
        return json_answer(response.body, response.status, _REPLAYED if outcome.replayed else None)

    async def payment_status(self, location: str, payment_id: str) -> Answer:
        payment = await self._operations.payment_status(self._ref(location), payment_id)
        return json_answer(payment_status_json(payment))


def unlinked() -> UnauthorizedError:
    """A location that is not (or no longer) linked, refused as a wrong secret is."""
    return UnauthorizedError("unauthorized", "missing or wrong credentials")


LOKE_BACKEND = web.AppKey("loke_backend", LokeBackend)
