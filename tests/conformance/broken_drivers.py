"""Drivers that each break one rule of the interface: the kit must catch every one.

Each is the simulator with one method made wrong, the way a vendor's driver could be.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from bridge.core.bill import Bill
from drivers.base import PaymentInstruction, PosPayment
from drivers.errors import PaymentRefusedError, PosOfflineError, PosTimeoutError
from drivers.simulator.driver import SimulatorDriver


class AppliesTwice(SimulatorDriver):
    """Sends a payment twice, as a driver that retransmits without sequence numbers would."""

    async def apply_payment(self, instruction: PaymentInstruction) -> PosPayment:
        await super().apply_payment(instruction)
        return await super().apply_payment(instruction)


class FloatMoney(SimulatorDriver):
    """Reads prices as floats (dollars), not integer minor units."""

    async def get_open_bill(self, location: str, table: int) -> Bill | None:
        bill = await super().get_open_bill(location, table)
        if bill is None:
            return None
        items = tuple(replace(i, amount=i.amount / 100) for i in bill.items)  # type: ignore[arg-type]
        return replace(bill, items=items)


class ForgetsPayments(SimulatorDriver):
    """Cannot look a payment up: the outbox would apply every uncertain payment again."""

    async def find_payment(self, location: str, payment_id: str) -> PosPayment | None:
        return None


class NoneForUnknownTables(SimulatorDriver):
    """Says "no open bill" for a table that does not exist."""

    async def get_open_bill(self, location: str, table: int) -> Bill | None:
        if table not in {t.number for t in await self.list_tables(location)}:
            return None
        return await super().get_open_bill(location, table)


class AcceptsOverpayment(SimulatorDriver):
    """Swallows the POS's refusal and reports the payment as applied."""

    async def apply_payment(self, instruction: PaymentInstruction) -> PosPayment:
        try:
            return await super().apply_payment(instruction)
        except PaymentRefusedError:
            return PosPayment(
                instruction.payment_id,
                "FAKE",
                instruction.bill_ref,
                instruction.amount,
                instruction.tip,
            )


class UntypedOffline(SimulatorDriver):
    """Lets its transport's exception escape instead of raising PosOfflineError."""

    async def get_open_bill(self, location: str, table: int) -> Bill | None:
        try:
            return await super().get_open_bill(location, table)
        except PosOfflineError as exc:
            raise ConnectionRefusedError(str(exc)) from None


class HangsWhenOffline(SimulatorDriver):
    """Waits forever for a POS that does not answer."""

    async def _enter(self) -> None:
        if self.control.mode == "offline":
            await asyncio.Event().wait()
        await super()._enter()


class LostReplyIsOffline(SimulatorDriver):
    """Says "not delivered" when the answer was lost: the payment would be sent again."""

    async def apply_payment(self, instruction: PaymentInstruction) -> PosPayment:
        try:
            return await super().apply_payment(instruction)
        except PosTimeoutError as exc:
            raise PosOfflineError(str(exc)) from None
