"""What LOKE's URLs ask of the bridge once a call is proven and parsed: four operations.

Why an interface between the routes and the services: the routes (auth, strict parsing,
fingerprints) run wherever the HTTP request is served, the operations only where the store,
the bill locks and the POS live; in this one process both are (:class:`LocalLokeBackend`).
An operation returns the rendered :class:`Answer` or
raises an :class:`~bridge.errors.ApiError`, so the bytes a platform gets do not depend on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from aiohttp import web

from bridge.answers import Answer, json_answer
from bridge.config import LocationConfig
from bridge.errors import NotFoundError
from bridge.platforms.loke import PLATFORM
from bridge.platforms.loke.contract import (
    LokeRenderer,
    PaymentBody,
    bill_json,
    payment_status_json,
)
from bridge.runtime import Runtime
from bridge.services.payment_answers import PaymentRequest

_RENDER = LokeRenderer()
_REPLAYED = {"Idempotent-Replayed": "true"}


class LokeBackend(Protocol):
    """The operations behind LOKE's URLs, for a linked location (``locations`` keys)."""

    @property
    def locations(self) -> Mapping[str, LocationConfig]: ...

    async def tables(self, location: str) -> Answer: ...

    async def open_bill(self, location: str, table: int) -> Answer: ...

    async def take_payment(self, location: str, table: int, body: PaymentBody) -> Answer: ...

    async def payment_status(self, location: str, payment_id: str) -> Answer: ...


LOKE_BACKEND = web.AppKey("loke_backend", LokeBackend)


class LocalLokeBackend:
    """The operations run by this process's services (``Runtime``, filled in at start)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self.locations: Mapping[str, LocationConfig] = runtime.config.locations

    async def tables(self, location: str) -> Answer:
        linked = self.locations[location]
        tables = await self._runtime.payments.tables(linked)
        return json_answer(
            {
                "locationId": linked.loke_location_id,
                "tables": [{"number": t.number, "name": t.name} for t in tables],
            }
        )

    async def open_bill(self, location: str, table: int) -> Answer:
        bill = await self._runtime.payments.open_bill(self.locations[location], table)
        return json_answer(bill_json(bill), headers={"ETag": f'"{bill.version}"'})

    async def take_payment(self, location: str, table: int, body: PaymentBody) -> Answer:
        outcome = await self._runtime.payments.take_payment(
            PaymentRequest(
                platform=PLATFORM,
                location=self.locations[location],
                table=table,
                payment_id=body.payment_id,
                claim=body.claim,
                label=body.label,
                fingerprint=body.fingerprint,
            ),
            _RENDER,
        )
        response = outcome.response
        return json_answer(response.body, response.status, _REPLAYED if outcome.replayed else None)

    async def payment_status(self, location: str, payment_id: str) -> Answer:
        linked = self.locations[location]
        payment = await self._runtime.store.get_payment(PLATFORM, payment_id)
        if payment is None or payment.location_id != linked.loke_location_id:
            raise NotFoundError(
                "unknown_payment",
                "no payment with this id at this location",
                {"paymentId": payment_id[:128]},
            )
        return json_answer(payment_status_json(payment))
