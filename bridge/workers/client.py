"""A worker's end of its channel to the owner, and the LOKE backend that calls through it.

When the channel drops the owner is gone (killed, or crashed): calls in flight fail with
:class:`OwnerGoneError` and ``on_lost`` runs; the worker then exits at once
(``bridge/workers/main.py``) so that it stops holding the listening socket a new owner binds.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import Callable, Mapping
from typing import Any

from bridge.answers import Answer
from bridge.config import LocationConfig
from bridge.errors import ServiceUnavailableError
from bridge.platforms.loke.contract import PaymentBody
from bridge.workers import frames
from bridge.workers.channel import FramedChannel
from bridge.workers.frames import ChannelProtocolError


class OwnerGoneError(ServiceUnavailableError):
    """The owner process went away with the call in flight."""

    def __init__(self) -> None:
        super().__init__(
            "bridge_restarting",
            "the bridge is restarting; retry shortly (a payment with the same paymentId)",
            headers={"Retry-After": "1"},
        )


class OwnerChannel(FramedChannel):
    """Calls to the owner, many in flight, answered in any order."""

    def __init__(self, on_lost: Callable[[], None]) -> None:
        super().__init__()
        self._on_lost = on_lost
        self._calls: dict[int, asyncio.Future[Answer]] = {}
        self._ids = itertools.count(1)

    @classmethod
    async def connect(cls, sock: socket.socket, on_lost: Callable[[], None]) -> OwnerChannel:
        loop = asyncio.get_running_loop()
        _, channel = await loop.create_unix_connection(lambda: cls(on_lost), sock=sock)
        return channel

    def data_received(self, data: bytes) -> None:
        try:
            received = self._reader.feed(data)
            for kind, call_id, payload in received:
                if kind != frames.ANSWER:
                    raise ChannelProtocolError(f"the owner sent a frame of kind {kind}")
                future = self._calls.pop(call_id, None)
                if future is not None and not future.done():
                    future.set_result(frames.decode_answer(payload))
        except ChannelProtocolError:
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        calls, self._calls = self._calls, {}
        for future in calls.values():
            if not future.done():
                future.set_exception(OwnerGoneError())
        self._on_lost()

    def hello(self) -> None:
        """Tell the owner this worker's listener serves."""
        if self.open:
            self.send(frames.encode_call(frames.HELLO, 0, []))

    async def call(self, kind: int, args: list[Any]) -> Answer:
        if not self.open:
            raise OwnerGoneError()
        call_id = next(self._ids) & 0xFFFFFFFF
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = future
        self.send(frames.encode_call(kind, call_id, args))
        try:
            return await future
        finally:
            self._calls.pop(call_id, None)


class OwnerLokeBackend:
    """LOKE's operations, run by the owner process (``bridge/workers/owner.py``)."""

    def __init__(self, locations: Mapping[str, LocationConfig], channel: OwnerChannel) -> None:
        self.locations = locations
        self._channel = channel

    async def tables(self, location: str) -> Answer:
        return await self._channel.call(frames.TABLES, [location])

    async def open_bill(self, location: str, table: int) -> Answer:
        return await self._channel.call(frames.BILL, [location, table])

    async def take_payment(self, location: str, table: int, body: PaymentBody) -> Answer:
        return await self._channel.call(frames.PAYMENT, frames.payment_args(location, table, body))

    async def payment_status(self, location: str, payment_id: str) -> Answer:
        return await self._channel.call(frames.PAYMENT_STATUS, [location, payment_id])
