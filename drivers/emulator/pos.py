"""The emulated POS behind every wire protocol: the simulator's bills, answering requests.

:class:`EmulatedPos` answers a :class:`Request` with a :class:`Reply`, keeping its tables,
bills and payments in a :class:`SimulatorDriver` (in memory, or in a SQLite file so that the
POS outlives a crash of the bridge, and tests can read what it holds). Each protocol's server
(``drivers/emulator/*_server.py``) frames these requests and replies on its wire, and applies
the :class:`Faults` a test or a technician switches on:

- ``silent``: the POS hangs: it takes bytes in and sends nothing back, not even an ACK;
- ``delay_ms``: every reply waits that long;
- ``corrupt_per_mille``: each chunk of bytes the POS writes has that chance (in 1,000) of
  one flipped bit;
- ``drop_replies``: requests are carried out but their replies are lost, as when the POS
  crashes after applying a payment and before answering;
- :meth:`EmulatedPos.reboot`: connections are cut and nothing is accepted for a while; the
  bills survive (they are in the simulator's file, or in its memory).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from drivers.errors import DriverError
from drivers.simulator.driver import SimulatorDriver
from drivers.wire import messages
from drivers.wire.messages import ErrorInfo, Reply, Request, WireFormatError


@dataclass(slots=True)
class Faults:
    silent: bool = False
    delay_ms: int = 0
    corrupt_per_mille: int = 0
    drop_replies: bool = False

    def update(self, changes: dict[str, Any]) -> None:
        """Apply ``changes`` (from the control API); ``ValueError`` names a bad key."""
        kinds = {f.name: type(getattr(self, f.name)) for f in fields(self)}
        for key, value in changes.items():
            if key not in kinds:
                raise ValueError(f"{key}: unknown fault (known: {', '.join(kinds)})")
            if type(value) is not kinds[key]:
                raise ValueError(f"{key}: must be {kinds[key].__name__}")
            if kinds[key] is int and not 0 <= value <= (1000 if "mille" in key else 600_000):
                raise ValueError(f"{key}: out of range")
            setattr(self, key, value)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class EmulatedPos:
    """Requests in, replies out, over the simulator's bills; see the module docstring."""

    def __init__(self, simulator: SimulatorDriver, *, seed: int = 0) -> None:
        self.simulator = simulator
        self.faults = Faults()
        self.rng = random.Random(seed)
        self.requests_seen = 0
        self.rebooting_until = 0.0
        self._reboot_listeners: list[Callable[[], None]] = []

    async def handle(self, request: Request) -> Reply | None:
        """The reply to ``request``, or ``None`` when the POS does not answer it."""
        self.requests_seen += 1
        if self.faults.silent:
            return None
        if self.faults.delay_ms:
            await asyncio.sleep(self.faults.delay_ms / 1000)
        reply = await self._answer(request)
        return None if self.faults.drop_replies else reply

    def corrupt(self, data: bytes) -> bytes:
        """``data``, with one bit flipped when the ``corrupt_per_mille`` die says so."""
        if not data or self.rng.randrange(1000) >= self.faults.corrupt_per_mille:
            return data
        flipped = bytearray(data)
        flipped[self.rng.randrange(len(flipped))] ^= 1 << self.rng.randrange(8)
        return bytes(flipped)

    @property
    def rebooting(self) -> bool:
        return asyncio.get_running_loop().time() < self.rebooting_until

    def on_reboot(self, listener: Callable[[], None]) -> None:
        """Servers register here to cut their connections when the POS reboots."""
        self._reboot_listeners.append(listener)

    def reboot(self, seconds: float) -> None:
        self.rebooting_until = asyncio.get_running_loop().time() + seconds
        for listener in self._reboot_listeners:
            listener()

    async def _answer(self, request: Request) -> Reply:
        sim, args = self.simulator, request.args
        try:
            if request.op == "health":
                return Reply(request.id, messages.health_result(await sim.health()))
            if request.op == "list_tables":
                tables = await sim.list_tables(_text(args, "location"))
                return Reply(request.id, messages.tables_result(tables))
            if request.op == "get_open_bill":
                bill = await sim.get_open_bill(_text(args, "location"), _int(args, "table"))
                return Reply(request.id, messages.bill_result(bill))
            if request.op == "apply_payment":
                instruction = messages.instruction_from_args(args)
                applied = await sim.apply_payment(instruction)
                return Reply(request.id, messages.payment_result(applied))
            if request.op == "find_payment":
                found = await sim.find_payment(_text(args, "location"), _text(args, "payment_id"))
                return Reply(request.id, messages.payment_result(found))
        except DriverError as exc:  # refusals, unknown tables, bad arguments
            return messages.error_reply(request.id, exc)
        return Reply(request.id, error=ErrorInfo("unknown_op", f"no operation {request.op!r}"))


def _text(args: Any, key: str) -> str:
    value = args.get(key)
    if not isinstance(value, str):
        raise WireFormatError(f"{key}: must be a string")
    return value


def _int(args: Any, key: str) -> int:
    value = args.get(key)
    if type(value) is not int:
        raise WireFormatError(f"{key}: must be an integer")
    return value
