"""What LOKE's URLs ask of the bridge once a call is proven and parsed: four operations.

:class:`LokeBackend` maps LOKE's terms (its location ids, its JSON) to the platform-neutral
:class:`~bridge.services.operations.PosOperations` and renders their typed answers in LOKE's
words. An operation returns the rendered :class:`Answer` or raises an
:class:`~common.errors.ApiError`.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from bridge.config import LocationConfig
from bridge.platforms.loke import PLATFORM
from bridge.platforms.loke.contract import (
    PaymentBody,
    bill_json,
    payment_status_json,
)
from bridge.services.locations import LocationRef
from bridge.services.operations import NewPayment, PosOperations
from common.answers import Answer, json_answer

_REPLAYED = {"Idempotent-Replayed": "true"}


def location_ref(location: LocationConfig) -> LocationRef:
    """A linked LOKE location as the services name it."""
    return LocationRef(PLATFORM, location.loke_location_id, location.driver, location.pos_location)


def location_refs(locations: Mapping[str, LocationConfig]) -> dict[tuple[str, str], LocationRef]:
    """Every linked LOKE location, by ``(platform, location id)``, for the outbox."""
    refs = (location_ref(location) for location in locations.values())
    return {ref.key: ref for ref in refs}


class LokeBackend:
    """The operations run by this process's services: LOKE's terms mapped to the
    platform-neutral :class:`PosOperations`, and their typed answers rendered as LOKE's
    JSON."""

    def __init__(self, operations: PosOperations, locations: Mapping[str, LocationConfig]) -> None:
        self._operations = operations
        self.locations: Mapping[str, LocationConfig] = locations
        self._refs = {key: location_ref(linked) for key, linked in locations.items()}

    async def tables(self, location: str) -> Answer:
        ref = self._refs[location]
        tables = await self._operations.list_tables(ref)
        return json_answer(
            {
                "locationId": ref.location_id,
                "tables": [{"number": t.number, "name": t.name} for t in tables],
            }
        )

    async def open_bill(self, location: str, table: int) -> Answer:
        bill = await self._operations.open_bill(self._refs[location], table)
        return json_answer(bill_json(bill), headers={"ETag": f'"{bill.version}"'})

    async def take_payment(self, location: str, table: int, body: PaymentBody) -> Answer:
        payment = NewPayment(body.payment_id, body.claim, body.label, body.fingerprint)
        outcome = await self._operations.take_payment(self._refs[location], table, payment)
        response = outcome.response
        return json_answer(response.body, response.status, _REPLAYED if outcome.replayed else None)

    async def payment_status(self, location: str, payment_id: str) -> Answer:
        payment = await self._operations.payment_status(self._refs[location], payment_id)
        return json_answer(payment_status_json(payment))


LOKE_BACKEND = web.AppKey("loke_backend", LokeBackend)
