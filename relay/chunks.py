"""Chunked, flow-controlled byte streams over NATS core messages, for ``cluster.py``.

A NATS message is bounded (``max_payload``, 1 MiB by default) and core NATS has no flow
control: a fast publisher overruns a slow subscriber, which then drops messages ("slow
consumer"). So each direction of a routed exchange is a sequence of messages on the
receiver's own inbox subject, told apart by headers:

- ``Pb-Kind: data``, ``Pb-Seq: n`` (1, 2, …): at most ``chunk_bytes`` of body;
- ``Pb-Kind: end``, ``Pb-Seq: n``: the body had ``n`` chunks;
- ``Pb-Kind: ack``, ``Pb-Seq: n`` (sent back on the *sender's* inbox): chunk ``n`` has been
  taken by the receiver's consumer. A sender never has more than ``window`` chunks unacked,
  so at most ``window × chunk_bytes`` sits in the receiver's memory;
- ``Pb-Kind: head`` (response only), ``cancel``, ``abort``: see docs/relay.md.

A gap in the sequence (a dropped message) aborts the exchange: never a body with a hole.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

KIND = "Pb-Kind"
SEQ = "Pb-Seq"


class ExchangeBrokenError(Exception):
    """The peer cancelled or aborted, a chunk went missing, or it fell silent too long."""


class Channel:
    """One inbox subscription: the incoming body's chunks, and acks for what we send."""

    def __init__(self, nc: Any, subject: str, idle_s: float) -> None:
        self.nc = nc
        self.subject = subject
        self.idle_s = idle_s
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.sender: Sender | None = None
        self.on_cancel: Callable[[], object] | None = None
        self.ack_to: str | None = None  # where our acks for incoming chunks go
        self._expected = 1
        self._ended = False

    def receive(self, msg: Any) -> None:
        """One message for this inbox (routed here by :class:`Inboxes`)."""
        kind = (msg.headers or {}).get(KIND, "")
        if kind == "ack":
            if self.sender is not None:
                self.sender.acked(int(msg.headers.get(SEQ, "0")))
        elif kind == "cancel":
            self.queue.put_nowait(msg)
            if self.on_cancel is not None:
                self.on_cancel()
        else:
            self.queue.put_nowait(msg)

    async def next(self, timeout_s: float | None = None) -> Any:
        """The next non-ack message, within ``timeout_s`` (default: the idle limit)."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout_s or self.idle_s)
        except TimeoutError:
            raise ExchangeBrokenError("the peer fell silent") from None

    async def read(self) -> bytes:
        """The next body chunk, acknowledged as taken; ``b""`` at the end of the body."""
        if self._ended:
            return b""
        msg = await self.next()
        headers = msg.headers or {}
        kind, seq = headers.get(KIND, ""), int(headers.get(SEQ, "0"))
        if kind == "data" and seq == self._expected:
            self._expected += 1
            if self.ack_to is not None:
                await self.nc.publish(self.ack_to, b"", headers={KIND: "ack", SEQ: str(seq)})
            return bytes(msg.data)
        if kind == "end" and seq == self._expected - 1:
            self._ended = True
            return b""
        raise ExchangeBrokenError(f"unexpected {kind or 'message'} {seq} on {self.subject}")


class Sender:
    """Publishes one body to the peer's inbox in sequence-numbered chunks, within a window."""

    def __init__(self, nc: Any, subject: str, chunk_bytes: int, window: int, idle_s: float):
        self.nc = nc
        self.subject = subject
        self.chunk_bytes = chunk_bytes
        self.window = window
        self.idle_s = idle_s
        self.sent = 0
        self._acked = 0
        self._progress = asyncio.Event()

    def acked(self, seq: int) -> None:
        if seq > self._acked:
            self._acked = seq
            self._progress.set()

    async def publish(
        self, kind: str, data: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> None:
        await self.nc.publish(self.subject, data, headers={KIND: kind, **(headers or {})})

    async def data(self, data: bytes) -> None:
        """Send ``data`` as one or more chunks, waiting for acks to stay within the window."""
        for start in range(0, len(data), self.chunk_bytes):
            while self.sent - self._acked >= self.window:
                self._progress.clear()
                try:
                    await asyncio.wait_for(self._progress.wait(), self.idle_s)
                except TimeoutError:
                    raise ExchangeBrokenError("the peer stopped acknowledging") from None
            self.sent += 1
            chunk = data[start : start + self.chunk_bytes]
            await self.publish("data", chunk, {SEQ: str(self.sent)})

    async def end(self) -> None:
        await self.publish("end", headers={SEQ: str(self.sent)})


class Inboxes:
    """Every exchange's inbox on this relay under one wildcard subscription.

    Why not a subscription per exchange: each costs a SUB and an UNSUB on the wire and, in
    nats-py, a subscription object with its own task, on both relays for every routed request;
    one ``<prefix>.*`` subscription (as nats-py's own request/reply does for its replies)
    routes each message to its channel by subject, a dict lookup.
    """

    def __init__(self, nc: Any, idle_s: float) -> None:
        self.nc = nc
        self.idle_s = idle_s
        self._prefix = nc.new_inbox()
        self._next = 0
        self._channels: dict[str, Channel] = {}

    async def start(self) -> None:
        """Subscribe; it lasts as long as the NATS connection (closed with it)."""
        await self.nc.subscribe(self._prefix + ".*", cb=self._route)

    def open(self) -> Channel:
        """A new inbox and its channel; :meth:`close` it when the exchange ends."""
        self._next += 1
        channel = Channel(self.nc, f"{self._prefix}.{self._next}", self.idle_s)
        self._channels[channel.subject] = channel
        return channel

    def close(self, channel: Channel) -> None:
        """Messages still arriving for ``channel`` are dropped from now on."""
        self._channels.pop(channel.subject, None)

    async def _route(self, msg: Any) -> None:
        channel = self._channels.get(msg.subject)
        if channel is not None:
            channel.receive(msg)
