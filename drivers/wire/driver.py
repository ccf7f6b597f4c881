"""The driver interface over the message catalogue: what serial, TCP and file-drop share.

A wire driver is :class:`WireDriver` plus an :class:`Exchange` that delivers one request and
brings back its reply (``StreamExchange`` for a codec on a serial port or TCP socket, the
folder exchange for file-drop). Subclasses only say which exchange their URL builds.

Options every wire driver takes: ``timeout_ms`` (how long a reply may take, default 5000) and
``write_timeout_ms`` for ``apply_payment`` (default twice ``timeout_ms``: a POS may print a
receipt before it answers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol, TypeVar

from bridge.core.bill import Bill
from drivers.base import (
    DriverHealth,
    DriverInfo,
    DriverSettings,
    PaymentInstruction,
    PosPayment,
    Table,
)
from drivers.errors import PosUnavailableError
from drivers.options import int_option, merged_options, reject_unknown
from drivers.wire import messages
from drivers.wire.messages import PosProtocolError, Reply, Request, WireFormatError

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class Exchange(Protocol):
    """Delivers a request and returns its reply, or raises ``PosUnavailableError``."""

    describe: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def call(self, op: str, args: dict[str, object], timeout: float) -> Reply: ...


class WireDriver:
    """A POS reached through the message catalogue; see the module docstring."""

    info: ClassVar[DriverInfo]

    def __init__(self, settings: DriverSettings) -> None:
        options = merged_options(settings.url.query, settings.options)
        self._timeout = int_option(options, "timeout_ms", 5000, 1, 600_000) / 1000
        self._write_timeout = (
            int_option(options, "write_timeout_ms", int(self._timeout * 2000), 1, 600_000) / 1000
        )
        self.exchange = self.make_exchange(settings, options)
        reject_unknown(options)
        self._last_error = ""

    def make_exchange(self, settings: DriverSettings, options: dict[str, Any]) -> Exchange:
        """The exchange for ``settings.url``; pops the options it reads."""
        raise NotImplementedError

    async def open(self) -> None:
        await self.exchange.open()

    async def close(self) -> None:
        await self.exchange.close()

    async def list_tables(self, location: str) -> list[Table]:
        return await self._call("list_tables", {"location": location}, messages.tables_from_result)

    async def get_open_bill(self, location: str, table: int) -> Bill | None:
        return await self._call(
            "get_open_bill", {"location": location, "table": table}, messages.bill_from_result
        )

    async def apply_payment(self, instruction: PaymentInstruction) -> PosPayment:
        payment = await self._call(
            "apply_payment",
            messages.instruction_args(instruction),
            messages.payment_from_result,
            self._write_timeout,
        )
        if payment is None or payment.payment_id != instruction.payment_id:
            raise PosProtocolError("apply_payment answered without the payment it applied")
        return payment

    async def find_payment(self, location: str, payment_id: str) -> PosPayment | None:
        payment = await self._call(
            "find_payment",
            {"location": location, "payment_id": payment_id},
            messages.payment_from_result,
        )
        if payment is not None and payment.payment_id != payment_id:
            # Trusting it would mark a payment applied that the POS never took.
            raise PosProtocolError("find_payment answered with another payment")
        return payment

    async def health(self) -> DriverHealth:
        now = datetime.now(UTC)
        try:
            health = await self._call("health", {}, messages.health_from_result)
        except PosUnavailableError as exc:
            return DriverHealth(False, f"{self.exchange.describe}: {exc}", now)
        return DriverHealth(health.online, health.detail, now)

    async def _call(
        self,
        op: str,
        args: dict[str, object],
        parse: Callable[[Mapping[str, Any]], _T],
        timeout: float | None = None,
    ) -> _T:
        """One request, its reply checked and parsed; a malformed reply is the POS's fault."""
        reply = await self.exchange.call(op, args, timeout or self._timeout)
        try:
            return parse(messages.raise_for(reply, Request(reply.id, op, args)))
        except WireFormatError as exc:
            raise PosProtocolError(f"{op}: malformed reply: {exc}") from exc
